"""What our training loop costs besides the network, measured rather than guessed.

``ddpm.training.loop.train`` does per step what every loop here does (batch, loss, backward,
gradient clipping, Adam, EMA, ``loss.item()``) plus its own bookkeeping (a finiteness check,
the log interval, a disabled progress bar) and, every ``checkpoint_every`` steps, a checkpoint
written atomically with an fsync. Comparing its throughput with the peers' loop driving the
same U-Net and the same ``training_loss`` gives that bookkeeping's cost per step, less what the
library's fused Adam and channels_last layout save (the peers' loop has neither); the parts of
a step are timed one by one on the library's own training state.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from peers import TrainingRun, train_peer

from ddpm.checkpoints import save_checkpoint
from ddpm.diffusion import to_model_range
from ddpm.runtime import use_channels_last
from ddpm.spec import RunSpec
from ddpm.training.config import TrainingConfig
from ddpm.training.state import TrainState, ema_decay, update_ema
from ddpm.unet import UNet, count_parameters

CPU = torch.device("cpu")


def bare_loop_run(
    images: torch.Tensor, spec: RunSpec, training: TrainingConfig, seconds: float
) -> TrainingRun:
    """Our U-Net and loss trained for ``seconds`` in the peers' loop, with ``training``."""
    diffusion, unet_config, _ = spec.build()
    torch.manual_seed(spec.seed)
    model = UNet(unet_config)
    return train_peer(
        "ours in the bare loop",
        model,
        lambda module, x0: diffusion.training_loss(module, x0),
        images,
        training,
        [seconds],
        count_parameters(model),
    )


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


def step_parts_ms(images: torch.Tensor, spec: RunSpec, checkpoint_state: dict) -> dict[str, float]:
    """Milliseconds of each part of one training step of ours, and of one checkpoint, on the
    training state the library builds for ``spec`` (its optimizer, layout, batches)."""
    diffusion, unet_config, config = spec.build()
    channels_last = use_channels_last(CPU, config.precision)
    torch.manual_seed(spec.seed)
    state = TrainState.create(unet_config, config, len(images), CPU, channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x0 = to_model_range(images[: config.batch_size]).contiguous(memory_format=layout)
    loss = diffusion.training_loss(state.model, x0)

    def forward_backward():
        diffusion.training_loss(state.model, x0, generator=state.loss_generator).backward()

    forward_backward()
    with tempfile.TemporaryDirectory() as scratch:
        parts = {
            "batch (index + to [-1, 1])": lambda: to_model_range(
                images[state.sampler.next_batch()]
            ).contiguous(memory_format=layout),
            "forward + backward": forward_backward,
            "gradient clipping": lambda: torch.nn.utils.clip_grad_norm_(
                state.model.parameters(), config.grad_clip
            ),
            "Adam step": state.optimizer.step,
            "EMA update": lambda: update_ema(state.ema_model, state.model, ema_decay(config, 0)),
            "loss.item()": loss.item,
            "checkpoint write (each)": lambda: save_checkpoint(
                Path(scratch), checkpoint_state["identity"], checkpoint_state, 1
            ),
        }
        if config.grad_clip is None:  # the library does not clip then
            del parts["gradient clipping"]
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
