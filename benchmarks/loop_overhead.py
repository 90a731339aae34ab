"""What our training loop costs besides the network, measured rather than guessed.

``ddpm.training.train`` does per step what every loop here does (batch, loss, backward, gradient
clipping, Adam, EMA, ``loss.item()``) plus its own bookkeeping (a finiteness check, the log
interval, a disabled progress bar) and, every ``checkpoint_every`` steps, a checkpoint written
atomically with an fsync. Comparing its throughput with the benchmark's bare loop driving the
same U-Net and the same ``training_loss`` gives that bookkeeping's cost per step; the parts
common to both loops are timed one by one.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from budget_training import Optimisation, TrainingRun, train_peer

from ddpm.diffusion import GaussianDiffusion, to_model_range
from ddpm.files import atomic_write
from ddpm.unet import UNet, count_parameters
from ddpm.unet_config import UNetConfig


def bare_loop_run(
    images: torch.Tensor,
    diffusion: GaussianDiffusion,
    unet_config: UNetConfig,
    optimisation: Optimisation,
    seconds: float,
) -> TrainingRun:
    """Our U-Net and loss trained for ``seconds`` in the peers' loop."""
    torch.manual_seed(optimisation.seed)
    model = UNet(unet_config)
    run = train_peer(
        "ours in the bare loop",
        model,
        lambda module, x0: diffusion.training_loss(module, x0),
        images,
        optimisation,
        [seconds],
        count_parameters(model),
    )
    return run


def _median_cpu_ms(call, repeats: int = 20) -> float:
    """Median CPU milliseconds of ``call``: CPU time, unlike wall time, does not count the
    moments the machine's other users held the core."""
    call()  # the first call may allocate
    times = []
    for _ in range(repeats):
        started = time.process_time()
        call()
        times.append(time.process_time() - started)
    return 1000.0 * statistics.median(times)


def step_parts_ms(
    images: torch.Tensor,
    diffusion: GaussianDiffusion,
    unet_config: UNetConfig,
    batch_size: int,
    checkpoint_state: dict,
) -> dict[str, float]:
    """Milliseconds of each part of one training step of our U-Net, and of one checkpoint."""
    torch.manual_seed(0)
    model = UNet(unet_config).train()
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters())
    x0 = to_model_range(images[:batch_size])
    loss = diffusion.training_loss(model, x0)

    def forward_backward():
        diffusion.training_loss(model, x0).backward()

    @torch.no_grad()
    def ema_update():
        for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
            ema_param.lerp_(param, 0.01)

    forward_backward()
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "checkpoint.pt"
        parts = {
            "batch (index + to [-1, 1])": lambda: to_model_range(
                images[torch.randperm(len(images))[:batch_size]]
            ),
            "forward + backward": forward_backward,
            "gradient clipping": lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0),
            "Adam step": optimizer.step,
            "EMA update": ema_update,
            "loss.item()": loss.item,
            "checkpoint write (each)": lambda: atomic_write(
                target, lambda tmp: torch.save(checkpoint_state, tmp)
            ),
        }
        return {
            name: _median_cpu_ms(call, repeats=5 if "checkpoint" in name else 20)
            for name, call in parts.items()
        }


def print_overhead(
    ours: TrainingRun, bare: TrainingRun, batch_size: int, parts: dict, checkpoints: int
) -> None:
    """Our loop against the bare one, per step in wall and (estimated) CPU milliseconds."""

    def per_step(run: TrainingRun) -> tuple[float, float]:
        wall_ms = 1000.0 * batch_size / run.images_per_second
        return wall_ms, wall_ms * run.cpu_share

    (ours_wall, ours_cpu), (bare_wall, bare_cpu) = per_step(ours), per_step(bare)
    print(
        f"our loop: {ours.images_per_second:.1f} img/s through ddpm.training.train, "
        f"{bare.images_per_second:.1f} img/s for the same U-Net and loss in the bare loop: per "
        f"step {ours_wall:.2f} against {bare_wall:.2f} ms wall ({ours_wall - bare_wall:+.2f} ms), "
        f"about {ours_cpu:.2f} against {bare_cpu:.2f} ms CPU ({ours_cpu - bare_cpu:+.2f} ms, "
        f"{100 * (ours_cpu / bare_cpu - 1):+.1f} %; wall ms x CPU share)"
    )
    checkpoint_ms = parts["checkpoint write (each)"] * checkpoints / ours.steps
    print(
        f"  checkpoints: {checkpoints} in {ours.steps} steps, "
        f"{parts['checkpoint write (each)']:.1f} ms CPU each, {checkpoint_ms:.2f} ms per step on "
        f"average (the time to each moment includes them)"
    )
    print(
        "  parts of a step, CPU ms (median of 20 calls): "
        + "; ".join(f"{name} {ms:.2f}" for name, ms in parts.items() if "checkpoint" not in name)
    )
