"""Training loop for the noise-prediction U-Net, with checkpoints that resume exactly.

``train`` fits a :class:`~ddpm.unet.UNet` to uint8 images with L_simple (Adam, linear
learning-rate warm-up, gradient clipping, an exponential moving average (EMA) of the
weights) and writes into ``run_dir``:

``model.pt``
    the EMA weights and the record needed to rebuild model and diffusion
    (read it back with :func:`load_model`);
``train_log.csv``
    columns ``step, loss, lr, seconds``; ``loss`` is the mean over each log interval;
``run.json``
    the record of ``model.pt`` as JSON, plus the wall time;
``snapshots.npz``
    (only with ``snapshot_every``) arrays ``steps`` (K,) and ``images`` uint8
    (K, snapshot_count, C, H, W): EMA-model DDIM samples from one fixed noise seed.

Rolling checkpoints go to ``run_dir/checkpoints/``. They hold everything the run
depends on (weights, EMA, optimizer, step, every random-generator state, the loss
log and snapshots so far), so a run killed at any step and started again resumes
from the newest readable checkpoint and ends, on the CPU, with weights bit-identical
to a run that was never interrupted.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoints import (
    CHECKPOINT_FORMAT,
    FORMAT_VERSION,
    MODEL_FORMAT,
    ModelFileError,
    find_resumable_checkpoint,
    json_ready,
    list_checkpoints,
    load_model,
    package_versions,
    save_checkpoint,
    write_model_file,
)
from .diffusion import GaussianDiffusion, from_model_range, to_model_range
from .files import atomic_save_npz, atomic_write_text
from .runtime import (
    PRECISIONS,
    autocast_context,
    noise_predictor,
    resolve_device,
    resolve_precision,
    torch_threads,
    use_channels_last,
)
from .unet import UNet, UNetConfig, count_parameters

__all__ = [
    "ModelFileError",
    "NonFiniteLossError",
    "TrainingConfig",
    "TrainingConfigError",
    "load_model",
    "resolve_device",
    "resolve_precision",
    "train",
]

logger = logging.getLogger(__name__)

# Top-level keys of the record that ``train`` writes; ``record=`` may not override them.
_RECORD_KEYS = frozenset(
    {
        "format",
        "format_version",
        "unet",
        "schedule",
        "diffusion",
        "training",
        "seed",
        "parameter_count",
        "steps_trained",
        "final_loss",
        "data",
        "device",
        "precision",
        "resumed_from_step",
        "versions",
        "wall_seconds",
    }
)
# Settings that may change between an interrupted run and its resumption without
# changing what the run computes (only where, how fast, and how long).
_RESUMABLE_CHANGES = (
    "steps",
    "checkpoint_every",
    "keep_checkpoints",
    "device",
    "precision",
    "num_threads",
)


class TrainingConfigError(ValueError):
    """A training setting is invalid; the message names it and what is allowed."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message says at which step."""


@dataclass(frozen=True)
class TrainingConfig:
    """How to train.

    Args:
        steps: optimizer steps in total (a resumed run continues up to this number).
        batch_size: images per step.
        learning_rate: Adam's learning rate after warm-up (Ho et al.: 2e-4).
        warmup_steps: the learning rate rises linearly from lr/warmup_steps to lr
            over this many steps (0 = no warm-up).
        grad_clip: clip the global gradient norm to this value; ``None`` = no clipping.
        ema_decay: decay of the weight average; the decay actually used at step k is
            ``min(ema_decay, (1 + k) / (10 + k))`` so that short runs are not dominated
            by the random initial weights.
        checkpoint_every: write a rolling checkpoint every this many steps.
        keep_checkpoints: how many of the newest checkpoints to keep.
        log_every: one row of ``train_log.csv`` (and one log line) per this many steps.
        snapshot_every: draw EMA-model samples every this many steps (and at the end)
            into ``snapshots.npz``; ``None`` = no snapshots.
        snapshot_count: images per snapshot.
        seed: seeds the initial weights, dropout, the data order, t and the noise.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"auto"`` (bf16 autocast + TF32 + channels_last on CUDA, float32 on
            CPU), ``"bf16"`` (bf16 autocast on any device) or ``"fp32"``.
        num_threads: CPU threads for torch during training; ``None`` = leave as is.
    """

    steps: int
    batch_size: int = 128
    learning_rate: float = 2e-4
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 50
    snapshot_every: int | None = None
    snapshot_count: int = 16
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    num_threads: int | None = None

    def validate(self) -> TrainingConfig:
        """Raise :class:`TrainingConfigError` naming the first invalid setting; return self."""

        def positive_int(name, value, allow_none=False, allow_zero=False):
            if value is None and allow_none:
                return
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < (0 if allow_zero else 1)
            ):
                kind = "a non-negative" if allow_zero else "a positive"
                none = " or null" if allow_none else ""
                raise TrainingConfigError(
                    f"TrainingConfig.{name} must be {kind} integer{none}, got {value!r}"
                )

        positive_int("steps", self.steps)
        positive_int("batch_size", self.batch_size)
        positive_int("warmup_steps", self.warmup_steps, allow_zero=True)
        positive_int("checkpoint_every", self.checkpoint_every)
        positive_int("keep_checkpoints", self.keep_checkpoints)
        positive_int("log_every", self.log_every)
        positive_int("snapshot_every", self.snapshot_every, allow_none=True)
        positive_int("snapshot_count", self.snapshot_count)
        positive_int("seed", self.seed, allow_zero=True)
        positive_int("num_threads", self.num_threads, allow_none=True)
        if not isinstance(self.learning_rate, int | float) or not 0 < self.learning_rate < math.inf:
            raise TrainingConfigError(
                f"TrainingConfig.learning_rate must be > 0, got {self.learning_rate!r}"
            )
        if self.grad_clip is not None and (
            not isinstance(self.grad_clip, int | float) or not self.grad_clip > 0
        ):
            raise TrainingConfigError(
                f"TrainingConfig.grad_clip must be > 0, or null to switch clipping off, got {self.grad_clip!r}"
            )
        if not isinstance(self.ema_decay, int | float) or not 0.0 <= self.ema_decay < 1.0:
            raise TrainingConfigError(
                f"TrainingConfig.ema_decay must be in [0, 1) (0 = no averaging), got {self.ema_decay!r}"
            )
        if self.precision not in PRECISIONS:
            raise TrainingConfigError(
                f"TrainingConfig.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if not isinstance(self.device, str):
            raise TrainingConfigError(
                f"TrainingConfig.device must be a string such as 'auto', 'cpu', 'cuda', got {self.device!r}"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> TrainingConfig:
        """Build a config from a dict; unknown keys are rejected by name. Not validated."""
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise TrainingConfigError(
                f"unknown training setting(s) {unknown}; the settings are {sorted(allowed)}"
            )
        return cls(**values)


# --- pieces of the training state ---------------------------------------------------------
class _BatchSampler:
    """Batches of indices from a stream of random permutations (every image once per epoch).

    A batch that reaches the end of a permutation continues into the next one, so every
    batch is full even when the dataset is smaller than the batch. The state (the current
    permutation, the position in it and the generator) is saved in checkpoints.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int):
        self.num_images = num_images
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(num_images, generator=self.generator)
        self.position = 0

    def next_batch(self) -> torch.Tensor:
        parts, needed = [], self.batch_size
        while needed:
            if self.position == self.num_images:
                self.permutation = torch.randperm(self.num_images, generator=self.generator)
                self.position = 0
            take = min(needed, self.num_images - self.position)
            parts.append(self.permutation[self.position : self.position + take])
            self.position += take
            needed -= take
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "permutation": self.permutation.clone(),
            "position": self.position,
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.permutation = state["permutation"].clone()
        self.position = int(state["position"])


def _learning_rate(config: TrainingConfig, step: int) -> float:
    """Learning rate for optimizer step ``step`` (1-based): linear warm-up, then constant."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.learning_rate * step / config.warmup_steps
    return config.learning_rate


@torch.no_grad()
def _update_ema(ema_model: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for ema_param, param in zip(ema_model.parameters(), model.parameters(), strict=True):
        # ema <- decay * ema + (1 - decay) * param, i.e. a step of 1 - decay towards the weights.
        ema_param.lerp_(param.detach(), 1.0 - decay)
    for ema_buffer, buffer in zip(ema_model.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def _ema_decay(config: TrainingConfig, step: int) -> float:
    return min(config.ema_decay, (1.0 + step) / (10.0 + step))


def _data_fingerprint(images: torch.Tensor) -> dict:
    digest = hashlib.sha256(images.contiguous().cpu().numpy().tobytes()).hexdigest()
    return {"num_images": int(images.shape[0]), "shape": list(images.shape[1:]), "sha256": digest}


def _describe_diffusion(diffusion: GaussianDiffusion) -> dict:
    return {
        "variance": diffusion.variance,
        "loss": diffusion.loss,
        "clip_denoised": bool(diffusion.clip_denoised),
    }


def _identity(
    config: TrainingConfig, unet_config: UNetConfig, diffusion: GaussianDiffusion, data: dict
) -> dict:
    """What a checkpoint must agree on to be resumed by this run."""
    training = {k: v for k, v in config.to_dict().items() if k not in _RESUMABLE_CHANGES}
    return json_ready(
        {
            "unet": unet_config.to_dict(),
            "schedule": diffusion.schedule.describe(),
            "diffusion": _describe_diffusion(diffusion),
            "training": training,
            "data": data,
        }
    )


# --- snapshots ---------------------------------------------------------------------------
@torch.no_grad()
def _snapshot(
    ema_model: UNet,
    diffusion: GaussianDiffusion,
    count: int,
    seed: int,
    device,
    precision: str,
    channels_last: bool,
) -> torch.Tensor:
    """EMA-model DDIM samples from a fixed noise seed (so snapshots show the same noise evolving)."""
    c = ema_model.config
    generator = torch.Generator().manual_seed(seed)

    images = diffusion.ddim_sample(
        noise_predictor(ema_model, device, precision, channels_last),
        (count, c.image_channels, c.image_size, c.image_size),
        steps=min(diffusion.T, 50),
        eta=0.0,
        generator=generator,
        device=device,
    )
    return from_model_range(images).cpu()


# --- the loop ----------------------------------------------------------------------------
def _check_images(images: torch.Tensor, unet_config: UNetConfig) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        desc = f"{type(images).__name__} {getattr(images, 'dtype', '')} {tuple(getattr(images, 'shape', ()))}"
        raise TrainingConfigError(
            f"images must be a uint8 tensor of shape (N, C, H, W), got {desc}"
        )
    expected = (unet_config.image_channels, unet_config.image_size, unet_config.image_size)
    if tuple(images.shape[1:]) != expected:
        raise TrainingConfigError(
            f"images have shape (C, H, W) = {tuple(images.shape[1:])} but the U-Net config expects {expected}; "
            f"set image_channels/image_size to match the data"
        )
    if images.shape[0] == 0:
        raise TrainingConfigError("images is empty; training needs at least one image")


def _write_log_csv(path: Path, rows: list) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "loss", "lr", "seconds"])
    for step, loss, lr, seconds in rows:
        writer.writerow([step, repr(float(loss)), repr(float(lr)), f"{seconds:.3f}"])
    atomic_write_text(path, buffer.getvalue())


def _format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def train(
    images: torch.Tensor,
    diffusion: GaussianDiffusion,
    unet_config: UNetConfig,
    config: TrainingConfig,
    run_dir: str | os.PathLike,
    *,
    record: Mapping | None = None,
) -> Path:
    """Train a U-Net to predict the noise of ``diffusion`` on ``images``; return ``run_dir/model.pt``.

    Args:
        images: uint8 tensor (N, C, H, W) with values 0..255.
        diffusion: the forward process (schedule, loss) to train against.
        unet_config: the architecture; C, H, W must match ``images``.
        config: optimisation, checkpointing and logging settings.
        run_dir: directory for the outputs and ``checkpoints/``; created if missing. If it
            holds checkpoints of the same run, training resumes from the newest usable one.
        record: extra JSON-serialisable fields (e.g. dataset name) stored at the top level
            of the record in ``model.pt`` and ``run.json``.

    Raises:
        UNetConfigError, TrainingConfigError: invalid settings, before any work.
        NonFiniteLossError: the loss became NaN/inf; the checkpoints written so far stay.
    """
    unet_config.validate()
    config.validate()
    _check_images(images, unet_config)
    record = dict(record or {})
    clashes = sorted(set(record) & _RECORD_KEYS)
    if clashes:
        raise TrainingConfigError(
            f"record keys {clashes} are reserved for the training record; rename them"
        )
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    channels_last = use_channels_last(device, config.precision)
    if device.type == "cuda" and config.precision == "auto":
        # Any float32 matmul or convolution that autocast leaves alone then uses TF32 tensor cores.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    started = time.perf_counter()
    data = _data_fingerprint(images)
    identity = _identity(config, unet_config, diffusion, data)
    rng_devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    # Dropout draws from torch's global generator; fork it so the caller's stream is untouched,
    # seed it here and save/restore its state with the checkpoints.
    with torch_threads(config.num_threads), torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(config.seed)
        model = UNet(unet_config)  # initial weights come from the seeded global generator
        ema_model = copy.deepcopy(model).requires_grad_(False).eval()
        model.to(device)
        ema_model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
            ema_model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        sampler = _BatchSampler(images.shape[0], config.batch_size, seed=config.seed)
        # t and the noise of L_simple come from one generator; it lives on the CPU so a
        # seed gives the same draws on any device.
        loss_generator = torch.Generator().manual_seed(config.seed + 1)

        n_params = count_parameters(model)
        logger.info(
            "U-Net with %s parameters; %d steps of batch %d on %s (%s)",
            f"{n_params:,}",
            config.steps,
            config.batch_size,
            device,
            precision,
        )

        step = 0
        log_rows = []  # (step, mean loss over the interval, lr, seconds)
        interval = [0.0, 0]  # sum and count of the losses since the last log row
        snapshot_steps, snapshot_images = [], []
        seconds_before = 0.0
        resumed_from = None
        state = find_resumable_checkpoint(checkpoint_dir, identity, config.steps)
        if state is not None:
            model.load_state_dict(state["model"])
            ema_model.load_state_dict(state["ema_model"])
            optimizer.load_state_dict(state["optimizer"])
            sampler.load_state_dict(state["sampler"])
            loss_generator.set_state(state["loss_generator"])
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda" and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            step = int(state["step"])
            log_rows = [tuple(row) for row in state["log_rows"]]
            interval = list(state["interval"])
            snapshot_steps = list(state["snapshot_steps"])
            snapshot_images = list(state["snapshot_images"])
            seconds_before = float(state["seconds"])
            resumed_from = step
            logger.info("resuming from checkpoint at step %d of %d", step, config.steps)
        elif list_checkpoints(checkpoint_dir) or any(checkpoint_dir.glob("*.unusable")):
            logger.warning("no usable checkpoint in %s; starting over from step 0", checkpoint_dir)
        else:
            logger.info("no checkpoint in %s; starting from step 0", checkpoint_dir)

        def elapsed() -> float:
            return seconds_before + (time.perf_counter() - started)

        def checkpoint_state() -> dict:
            return {
                "format": CHECKPOINT_FORMAT,
                "format_version": FORMAT_VERSION,
                "identity": identity,
                "step": step,
                "model": model.state_dict(),
                "ema_model": ema_model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "sampler": sampler.state_dict(),
                "loss_generator": loss_generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "log_rows": [list(row) for row in log_rows],
                "interval": list(interval),
                "snapshot_steps": list(snapshot_steps),
                "snapshot_images": list(snapshot_images),
                "seconds": elapsed(),
            }

        def take_snapshot() -> None:
            if config.snapshot_every is None or (snapshot_steps and snapshot_steps[-1] == step):
                return
            snapshot_steps.append(step)
            snapshot_images.append(
                _snapshot(
                    ema_model,
                    diffusion,
                    config.snapshot_count,
                    config.seed,
                    device,
                    precision,
                    channels_last,
                )
            )

        images_on_device = images.to(device)
        model.train()
        show_bar = sys.stderr.isatty()
        bar = tqdm(
            total=config.steps,
            initial=step,
            desc="training",
            unit="step",
            disable=not show_bar,
            mininterval=5,
            dynamic_ncols=True,
        )
        session_start_step, session_start_time = step, time.perf_counter()
        try:
            while step < config.steps:
                lr = _learning_rate(config, step + 1)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                x0 = to_model_range(images_on_device[sampler.next_batch().to(device)])
                if channels_last:
                    x0 = x0.contiguous(memory_format=torch.channels_last)
                with autocast_context(device, precision):
                    loss = diffusion.training_loss(model, x0, generator=loss_generator)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    last = list_checkpoints(checkpoint_dir)
                    kept = (
                        f"the last good checkpoint is {last[0][1]}"
                        if last
                        else "no checkpoint was written yet"
                    )
                    raise NonFiniteLossError(
                        f"the training loss is {loss_value} at step {step + 1} (lr {lr:.3g}); {kept}. "
                        f"Lower learning_rate, enable grad_clip or use precision='fp32'"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                _update_ema(ema_model, model, _ema_decay(config, step))
                step += 1
                interval[0] += loss_value
                interval[1] += 1
                bar.update(1)

                if step % config.log_every == 0 or step == config.steps:
                    mean_loss = interval[0] / interval[1]
                    log_rows.append((step, mean_loss, lr, elapsed()))
                    interval = [0.0, 0]
                    done = step - session_start_step
                    rate = (
                        done
                        * config.batch_size
                        / max(time.perf_counter() - session_start_time, 1e-9)
                    )
                    eta = (config.steps - step) * config.batch_size / rate
                    bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                    if not show_bar:
                        logger.info(
                            "step %d/%d  loss %.4f  lr %.2e  %.1f img/s  ETA %s",
                            step,
                            config.steps,
                            mean_loss,
                            lr,
                            rate,
                            _format_duration(eta),
                        )
                if config.snapshot_every is not None and (
                    step % config.snapshot_every == 0 or step == config.steps
                ):
                    take_snapshot()
                if step % config.checkpoint_every == 0 or step == config.steps:
                    save_checkpoint(checkpoint_dir, checkpoint_state(), config.keep_checkpoints)
        finally:
            bar.close()

        # A run resumed at its final step still owes its snapshot if the checkpoint predates it.
        take_snapshot()
        final_loss = log_rows[-1][1] if log_rows else None
        wall_seconds = elapsed()
        full_record = json_ready(
            {
                **{k: v for k, v in record.items()},
                "format": MODEL_FORMAT,
                "format_version": FORMAT_VERSION,
                "unet": unet_config.to_dict(),
                "schedule": diffusion.schedule.describe(),
                "diffusion": _describe_diffusion(diffusion),
                "training": config.to_dict(),
                "seed": config.seed,
                "parameter_count": n_params,
                "steps_trained": step,
                "final_loss": final_loss,
                "data": data,
                "device": str(device),
                "precision": precision,
                "resumed_from_step": resumed_from,
                "versions": package_versions(),
                "wall_seconds": wall_seconds,
            }
        )

        if config.snapshot_every is not None:
            arrays = {
                "steps": np.asarray(snapshot_steps, dtype=np.int64),
                "images": torch.stack(snapshot_images).numpy().astype(np.uint8),
            }
            atomic_save_npz(run_dir / "snapshots.npz", **arrays)
        _write_log_csv(run_dir / "train_log.csv", log_rows)
        atomic_write_text(run_dir / "run.json", json.dumps(full_record, indent=2) + "\n")
        write_model_file(run_dir / "model.pt", full_record, ema_model)
        logger.info(
            "wrote %s (%d steps, final loss %s, %s)",
            run_dir / "model.pt",
            step,
            final_loss,
            _format_duration(wall_seconds),
        )
        return run_dir / "model.pt"
