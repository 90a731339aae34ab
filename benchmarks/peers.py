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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


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
