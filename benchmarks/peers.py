"""The peer U-Nets and diffusion processes the benchmarks compare ours against.

- diffusers' ``UNet2DModel`` laid out like our U-Net (channels ``(b, 2b, 2b)``, one residual
  block per level, attention at the lowest level and in the middle): it has exactly as many
  weights as ours at the same ``base_channels``;
- lucidrains' ``Unet`` (denoising-diffusion-pytorch) with the same channel multipliers; it has
  two residual blocks per level and linear attention at the upper levels, so at equal width it
  is larger; ``attention_heads``/``attention_head_dim`` bring it close to ours.

Each peer comes with a :class:`PeerSystem`: how to compute its training loss on a batch of
images in [-1, 1] and how to draw images by ancestral sampling, both through the peer's own
diffusion code (diffusers' ``DDPMScheduler``, lucidrains' ``GaussianDiffusion``).

The peers train in :func:`train_peer`, the one hand-written training loop of the benchmarks:
a peer needs a loop of its own, but its optimisation is ours, step for step, from the
library's own functions (``tests/test_benchmarks.py`` holds it to that).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ddpm.diffusion import to_model_range
from ddpm.training.config import TrainingConfig
from ddpm.training.state import _BatchSampler, ema_decay, learning_rate, update_ema

#: Steps at the start of every run whose time is left out of the training throughput.
WARMUP_STEPS = 10


class DiffusersUNet(torch.nn.Module):
    """diffusers ``UNet2DModel`` with our layout, called like ours as ``model(x, t)``."""

    def __init__(self, image_size: int, base_channels: int = 32, dropout: float = 0.0):
        super().__init__()
        from diffusers import UNet2DModel

        self.net = UNet2DModel(
            sample_size=image_size,
            in_channels=1,
            out_channels=1,
            block_out_channels=(base_channels, 2 * base_channels, 2 * base_channels),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
            norm_num_groups=8,
            dropout=dropout,
        )

    def forward(self, x, t):
        return self.net(x, t).sample


def lucidrains_unet(
    base_channels: int = 32,
    dropout: float = 0.0,
    attention_heads: int = 4,
    attention_head_dim: int = 32,
) -> torch.nn.Module:
    """lucidrains' ``Unet`` with channel multipliers (1, 2, 2), called as ``model(x, t)``."""
    from denoising_diffusion_pytorch import Unet

    return Unet(
        dim=base_channels,
        dim_mults=(1, 2, 2),
        channels=1,
        dropout=dropout,
        attn_heads=attention_heads,
        attn_dim_head=attention_head_dim,
    )


@dataclass
class PeerSystem:
    """A peer's trainable module and the two calls a benchmark needs.

    ``module`` holds every weight that is trained (and averaged by an EMA); ``loss(module, x0)``
    is the training loss of a batch ``x0`` in [-1, 1]; ``sample(module, n)`` draws ``n`` images
    in [-1, 1] by ancestral sampling over all T steps.
    """

    name: str
    module: torch.nn.Module
    network: torch.nn.Module
    loss: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
    sample: Callable[[torch.nn.Module, int], torch.Tensor]


def diffusers_system(
    betas: np.ndarray, image_size: int, base_channels: int, dropout: float
) -> PeerSystem:
    """diffusers' U-Net trained and sampled with its ``DDPMScheduler`` on our betas.

    The scheduler takes our betas as ``trained_betas``; its defaults are already Ho et al.'s
    sampler: epsilon prediction, x_0 clipped to [-1, 1], variance beta tilde (``fixed_small``).
    Its timesteps are 0-based (0..T-1), ours 1-based; both index the same betas.
    """
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(
        num_train_timesteps=len(betas),
        trained_betas=np.asarray(betas, dtype=np.float32),
        variance_type="fixed_small",
        clip_sample=True,
        prediction_type="epsilon",
    )
    network = DiffusersUNet(image_size, base_channels, dropout)

    def loss(module, x0):
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],))
        return F.mse_loss(module(scheduler.add_noise(x0, noise, t), t), noise)

    def sample(module, n):
        scheduler.set_timesteps(scheduler.config.num_train_timesteps)
        x = torch.randn(n, 1, image_size, image_size)
        for t in scheduler.timesteps:
            x = scheduler.step(module(x, t.expand(n)), t, x).prev_sample
        return x.clamp(-1, 1)

    return PeerSystem("diffusers", network, network, loss, sample)


def lucidrains_system(
    T: int, image_size: int, base_channels: int, dropout: float, heads: int, head_dim: int
) -> PeerSystem:
    """lucidrains' U-Net inside its ``GaussianDiffusion``: linear schedule, noise prediction.

    Its ``"linear"`` schedule is Ho et al.'s 1e-4..0.02 rescaled by 1000/T (the same betas as
    ours with ``rescale_to_T``); it samples with beta tilde and x_0 clipped to [-1, 1]. It
    expects training images in [0, 1] (it normalises them to [-1, 1] itself) and samples in
    [-1, 1] before its final ``unnormalize``, which is left out here.
    """
    from denoising_diffusion_pytorch import GaussianDiffusion

    network = lucidrains_unet(base_channels, dropout, heads, head_dim)
    diffusion = GaussianDiffusion(
        network,
        image_size=image_size,
        timesteps=T,
        objective="pred_noise",
        beta_schedule="linear",
        auto_normalize=True,
    )

    def loss(module, x0):
        return module((x0 + 1.0) / 2.0)

    def sample(module, n):
        # module.p_sample_loop without its progress bar: the same p_sample steps, T-1 down to 0.
        x = torch.randn(n, 1, image_size, image_size)
        for t in reversed(range(module.num_timesteps)):
            x, _ = module.p_sample(x, t)
        return x.clamp(-1, 1)

    return PeerSystem("lucidrains", diffusion, network, loss, sample)


def lucidrains_betas(T: int) -> np.ndarray:
    """The betas lucidrains' ``GaussianDiffusion(beta_schedule="linear")`` uses for ``T`` steps."""
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch import linear_beta_schedule

    return linear_beta_schedule(T).numpy()


@dataclass
class Snapshot:
    """The EMA weights of a system after ``seconds`` of training (``steps`` optimizer steps)."""

    seconds: float
    steps: int
    ema_state: dict


@dataclass
class TrainingRun:
    """What one system's training produced and how fast it went."""

    name: str
    parameters: int
    steps: int
    seconds: float
    images_per_second: float
    first_loss: float
    last_loss: float
    snapshots: list[Snapshot] = field(default_factory=list)
    #: CPU seconds of this process per wall-clock second while it trained: below 1 where the
    #: machine's other users took the core for part of the budget.
    cpu_share: float = 1.0
    #: Ours only: the last checkpoint ``train`` wrote (to time how long writing one takes).
    last_checkpoint: dict | None = None


def _steady_rate(step_ends: list[float], batch_size: int) -> float:
    """Images per second after the first WARMUP_STEPS steps (``step_ends``: elapsed time after
    each step), measured the same way as for ours from its log rows."""
    if len(step_ends) <= WARMUP_STEPS:
        raise RuntimeError(
            f"only {len(step_ends)} training step(s) fit into the budget, fewer than the "
            f"{WARMUP_STEPS + 1} needed to measure a throughput; raise --budget"
        )
    steps = len(step_ends) - WARMUP_STEPS
    return steps * batch_size / (step_ends[-1] - step_ends[WARMUP_STEPS - 1])


def _warm_up(module: torch.nn.Module, loss_fn, images: torch.Tensor, batch_size: int) -> None:
    """A few untimed steps on a throwaway copy, as our calibration run is for ours, so that no
    system pays for first-call costs (kernel selection, allocator growth) inside its budget."""
    copy_ = copy.deepcopy(module).train()
    optimizer = torch.optim.Adam(copy_.parameters())
    for _ in range(3):
        loss = loss_fn(copy_, to_model_range(images[:batch_size]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def train_peer(
    name: str,
    module: torch.nn.Module,
    loss_fn,
    images: torch.Tensor,
    config: TrainingConfig,
    moments: list[float],
    parameters: int,
) -> TrainingRun:
    """Train ``module`` on uint8 ``images`` as :func:`ddpm.training.loop.train` trains ours
    with ``config``: its batches, Adam with its learning rate at every step, its clipping and
    its EMA. Stops when the last of ``moments`` (seconds) has passed or after ``config.steps``
    steps, keeping a snapshot of the EMA weights as each moment passes."""
    _warm_up(module, loss_fn, images, config.batch_size)
    ema = copy.deepcopy(module).requires_grad_(False).eval()
    optimizer = torch.optim.Adam(module.parameters(), lr=config.learning_rate)
    batches = _BatchSampler(len(images), config.batch_size, config.seed)
    module.train()
    losses, step_ends, snapshots = [], [], []
    started, cpu_started = time.perf_counter(), time.process_time()
    while len(snapshots) < len(moments) and len(losses) < config.steps:
        done = len(losses)  # steps taken before this one, as the library counts them
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, done + 1)
        loss = loss_fn(module, to_model_range(images[batches.next_batch()]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
        optimizer.step()
        update_ema(ema, module, ema_decay(config, done))
        losses.append(loss.item())
        step_ends.append(time.perf_counter() - started)
        while len(snapshots) < len(moments) and step_ends[-1] >= moments[len(snapshots)]:
            snapshots.append(Snapshot(step_ends[-1], len(losses), copy.deepcopy(ema.state_dict())))
    return TrainingRun(
        name=name,
        parameters=parameters,
        steps=len(losses),
        seconds=step_ends[-1],
        images_per_second=_steady_rate(step_ends, config.batch_size),
        # Means over WARMUP_STEPS steps, like the rows of our train_log.csv.
        first_loss=sum(losses[:WARMUP_STEPS]) / len(losses[:WARMUP_STEPS]),
        last_loss=sum(losses[-WARMUP_STEPS:]) / len(losses[-WARMUP_STEPS:]),
        snapshots=snapshots,
        cpu_share=(time.process_time() - cpu_started) / step_ends[-1],
    )
