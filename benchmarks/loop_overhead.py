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
from budget_training import Optimisation, train_peer

from ddpm.diffusion import GaussianDiffusion, to_model_range
from ddpm.files import atomic_write
from ddpm.unet import UNet, UNetConfig, count_parameters


def bare_loop_rate(
    images: torch.Tensor,
    diffusion: GaussianDiffusion,
    unet_config: UNetConfig,
    optimisation: Optimisation,
    seconds: float,
) -> float:
    """Training images per second of our U-Net and loss in the peers' loop."""
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
    return run.images_per_second


def _median_ms(call, repeats: int = 20) -> float:
    call()  # the first call may allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
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
            name: _median_ms(call, repeats=5 if "checkpoint" in name else 20)
            for name, call in parts.items()
        }


def print_overhead(
    train_rate: float, bare_rate: float, batch_size: int, parts: dict, checkpoints: int, steps: int
) -> None:
    train_ms, bare_ms = 1000.0 * batch_size / train_rate, 1000.0 * batch_size / bare_rate
    print(
        f"our loop: {train_rate:.1f} img/s through ddpm.training.train, {bare_rate:.1f} img/s for "
        f"the same U-Net and loss in the bare loop: {train_ms:.2f} against {bare_ms:.2f} ms per "
        f"step, {train_ms - bare_ms:+.2f} ms ({100 * (train_ms / bare_ms - 1):+.1f} %)"
    )
    checkpoint_ms = parts["checkpoint write (each)"] * checkpoints / steps
    print(
        f"  of which checkpoints: {checkpoints} in {steps} steps, {checkpoint_ms:.2f} ms per step "
        f"on average (the time to each moment includes them)"
    )
    print(
        "  parts of a step, ms (one call each, median): "
        + "; ".join(f"{name} {ms:.2f}" for name, ms in parts.items() if "checkpoint" not in name)
    )
