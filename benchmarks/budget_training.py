"""Training under a wall-clock budget, with EMA snapshots at given moments, for each system.

Ours runs through ``ddpm.training.train`` itself (its loop, checkpoints and all). ``train`` takes
a number of steps, not a time, so a short calibration run measures its time per step first and
the run goes in one resumed chunk per moment, each sized by the speed measured so far; the EMA
weights at each moment are those of the checkpoint that chunk ends with. The peers run in :func:`train_peer`, a loop with the same optimisation as
ours (Adam, linear learning-rate warm-up, gradient clipping, the same EMA and its warm-up) that
stops at the moments ours reached, so that every system gets the same wall-clock time.
"""

from __future__ import annotations

import copy
import csv
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ddpm.diffusion import GaussianDiffusion, to_model_range
from ddpm.training.config import TrainingConfig
from ddpm.training.loop import train
from ddpm.unet import UNet
from ddpm.unet_config import UNetConfig

#: Steps at the start of every run whose time is left out of the training throughput.
WARMUP_STEPS = 10


@dataclass(frozen=True)
class Optimisation:
    """The settings every system trains with."""

    batch_size: int
    learning_rate: float
    warmup_steps: int
    grad_clip: float
    ema_decay: float
    seed: int


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


def _learning_rate(optimisation: Optimisation, step: int) -> float:
    # The same warm-up as ddpm.training (step is 1-based).
    if optimisation.warmup_steps and step < optimisation.warmup_steps:
        return optimisation.learning_rate * step / optimisation.warmup_steps
    return optimisation.learning_rate


def _ema_decay(optimisation: Optimisation, step: int) -> float:
    # The same EMA warm-up as ddpm.training (step is the 0-based index of the step just taken).
    return min(optimisation.ema_decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, module: torch.nn.Module, decay: float) -> None:
    for ema_param, param in zip(ema.parameters(), module.parameters(), strict=True):
        ema_param.lerp_(param.detach(), 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), module.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def _batches(num_images: int, batch_size: int, seed: int):
    """Index batches from a stream of random permutations (every image once per epoch)."""
    generator = torch.Generator().manual_seed(seed)
    permutation, position = torch.randperm(num_images, generator=generator), 0
    while True:
        if position + batch_size > num_images:
            permutation, position = torch.randperm(num_images, generator=generator), 0
        yield permutation[position : position + batch_size]
        position += batch_size


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
    optimisation: Optimisation,
    moments: list[float],
    parameters: int,
) -> TrainingRun:
    """Train ``module`` on uint8 ``images`` until the last of ``moments`` (seconds) has passed,
    keeping a snapshot of the EMA weights as each moment passes."""
    _warm_up(module, loss_fn, images, optimisation.batch_size)
    ema = copy.deepcopy(module).requires_grad_(False).eval()
    optimizer = torch.optim.Adam(module.parameters(), lr=optimisation.learning_rate)
    batches = _batches(len(images), optimisation.batch_size, optimisation.seed)
    module.train()
    losses, step_ends, snapshots = [], [], []
    started, cpu_started = time.perf_counter(), time.process_time()
    while len(snapshots) < len(moments):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(optimisation, len(losses) + 1)
        loss = loss_fn(module, to_model_range(images[next(batches)]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), optimisation.grad_clip)
        optimizer.step()
        _update_ema(ema, module, _ema_decay(optimisation, len(losses)))
        losses.append(loss.item())
        step_ends.append(time.perf_counter() - started)
        while len(snapshots) < len(moments) and step_ends[-1] >= moments[len(snapshots)]:
            snapshots.append(Snapshot(step_ends[-1], len(losses), copy.deepcopy(ema.state_dict())))
    return TrainingRun(
        name=name,
        parameters=parameters,
        steps=len(losses),
        seconds=step_ends[-1],
        images_per_second=_steady_rate(step_ends, optimisation.batch_size),
        # Means over WARMUP_STEPS steps, like the rows of our train_log.csv.
        first_loss=sum(losses[:WARMUP_STEPS]) / len(losses[:WARMUP_STEPS]),
        last_loss=sum(losses[-WARMUP_STEPS:]) / len(losses[-WARMUP_STEPS:]),
        snapshots=snapshots,
        cpu_share=(time.process_time() - cpu_started) / step_ends[-1],
    )


def _training_config(optimisation: Optimisation, steps: int, **overrides) -> TrainingConfig:
    settings = {
        "steps": steps,
        "batch_size": optimisation.batch_size,
        "learning_rate": optimisation.learning_rate,
        "warmup_steps": optimisation.warmup_steps,
        "grad_clip": optimisation.grad_clip,
        "ema_decay": optimisation.ema_decay,
        "seed": optimisation.seed,
        "device": "cpu",
        "precision": "fp32",
        "num_threads": 1,
        **overrides,
    }
    return TrainingConfig(**settings)


def _log_rows(run_dir: Path) -> list[tuple[int, float, float]]:
    """(step, mean loss, elapsed seconds) of every row of ``train_log.csv``."""
    with open(run_dir / "train_log.csv", newline="") as handle:
        return [
            (int(row["step"]), float(row["loss"]), float(row["seconds"]))
            for row in csv.DictReader(handle)
        ]


def seconds_per_step_of_ours(
    images, diffusion: GaussianDiffusion, unet_config: UNetConfig, optimisation, work_dir: Path
) -> float:
    """Steady-state seconds per step of ``train`` (a short run, one log row per step)."""
    steps = WARMUP_STEPS + 20
    config = _training_config(optimisation, steps, log_every=1, checkpoint_every=steps)
    run_dir = Path(tempfile.mkdtemp(prefix="calibration-", dir=work_dir))
    train(images, diffusion, unet_config, config, run_dir)
    rows = _log_rows(run_dir)[WARMUP_STEPS:]
    return (rows[-1][2] - rows[0][2]) / (rows[-1][0] - rows[0][0])


def _train_chunk(images, diffusion, unet_config, optimisation, steps, marks, run_dir):
    """``train`` up to ``steps`` in ``run_dir``, resuming from its last checkpoint there; return
    the wall and CPU seconds it took and the checkpoint it wrote at ``steps``."""
    config = _training_config(
        optimisation,
        steps,
        log_every=WARMUP_STEPS,
        checkpoint_every=steps,  # one checkpoint, at the end of the chunk
        keep_checkpoints=marks,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    train(images, diffusion, unet_config, config, run_dir)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    path = run_dir / "checkpoints" / f"step-{steps:08d}.pt"
    return wall, cpu, torch.load(path, map_location="cpu", weights_only=True)


def train_ours(
    images,
    diffusion: GaussianDiffusion,
    unet_config: UNetConfig,
    optimisation: Optimisation,
    budget_seconds: float,
    marks: int,
    work_dir: Path,
) -> TrainingRun:
    """``ddpm.training.train`` for about ``budget_seconds``, with a snapshot at each mark.

    One call of ``train`` per mark, each resuming the run from the previous one's checkpoint
    (which gives the same weights as one uninterrupted run); each chunk's number of steps comes
    from the speed measured so far, so that a machine that slows down or speeds up during the
    run moves the end of the budget by a fraction of one chunk only. Every call's start-up and
    final writes count as training time.
    """
    seconds_per_step = seconds_per_step_of_ours(
        images, diffusion, unet_config, optimisation, work_dir
    )
    run_dir = Path(tempfile.mkdtemp(prefix="ours-", dir=work_dir))
    snapshots, elapsed, cpu, steps = [], 0.0, 0.0, 0
    for mark in range(marks):
        chunk = max(1, round((budget_seconds - elapsed) / (marks - mark) / seconds_per_step))
        steps += chunk
        wall, chunk_cpu, state = _train_chunk(
            images, diffusion, unet_config, optimisation, steps, marks, run_dir
        )
        elapsed, cpu, seconds_per_step = elapsed + wall, cpu + chunk_cpu, wall / chunk
        snapshots.append(Snapshot(elapsed, steps, state["ema_model"]))
    rows = _log_rows(run_dir)
    if len(rows) < 2:
        raise RuntimeError("our run was too short to measure its throughput; raise --budget")
    # Rows are WARMUP_STEPS apart; the time up to the first one (start-up, warm-up) is left out.
    rate = (rows[-1][0] - rows[0][0]) * optimisation.batch_size / (rows[-1][2] - rows[0][2])
    return TrainingRun(
        name="ours",
        parameters=sum(p.numel() for p in UNet(unet_config).parameters()),
        steps=steps,
        seconds=elapsed,
        images_per_second=rate,
        first_loss=rows[0][1],
        last_loss=rows[-1][1],
        snapshots=snapshots,
        last_checkpoint=state,
        cpu_share=cpu / elapsed,
    )
