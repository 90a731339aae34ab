"""``train``: setup, then a loop of small steps over one :class:`~ddpm.training.state.TrainState`.

Each step is: one optimizer update (:meth:`_Run.train_step`), then, when due, a log row,
a snapshot and a checkpoint, and a look at the stop signals. Losses stay on the device
between log rows (:mod:`ddpm.training.monitor`), so a GPU is not made to wait every step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import ConfigError
from ..checkpoints import (
    CHECKPOINT_NAME_PATTERN,
    find_resumable_checkpoint,
    list_checkpoints,
    save_checkpoint,
)
from ..diffusion import to_model_range
from ..files import StorageError, check_writable, remove_stale_temporaries
from ..runtime import (
    PrecisionChoice,
    autocast_context,
    choose_precision,
    resolve_device,
    torch_threads,
    use_channels_last,
)
from ..spec import RunSpec
from ..unet import count_parameters
from . import outputs
from .config import TrainingConfig
from .guards import RunDirectoryLock, StopSignals, TrainingInterrupted
from .state import TrainState, ema_decay, learning_rate, update_ema

logger = logging.getLogger("ddpm.training")


def _format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _last_checkpoint(checkpoint_dir: Path, before: int | None = None) -> tuple[int, str]:
    """(step, sentence for messages) of the newest checkpoint on disk, of a step < ``before``."""
    found = [(s, p) for s, p in list_checkpoints(checkpoint_dir) if before is None or s < before]
    if not found:
        return 0, "no good checkpoint was written yet"
    return found[0][0], f"the last good checkpoint is {found[0][1]}"


class _Run:
    """One session of a training run: its settings, its state and the steps of its loop."""

    def __init__(self, images, spec: RunSpec, run_dir, device, decided):
        self.spec = spec
        self.diffusion, self.unet_config, config = spec.build()
        self.config = config
        self.run_dir, self.checkpoint_dir = run_dir, run_dir / "checkpoints"
        self.device = device
        # A precision decided beforehand (for a whole study) fixes the layout too; "auto"
        # picks the layout first and times the precisions in it.
        self.channels_last = use_channels_last(
            device, decided.precision if decided else config.precision
        )
        self.identity = outputs.identity(
            spec, outputs.data_fingerprint(images), outputs.code_fingerprint()
        )
        self.images = images.to(device)
        self.state = TrainState.create(
            self.unet_config, config, images.shape[0], device, self.channels_last
        )
        self.parameter_count = count_parameters(self.state.model)
        self.precision, self.precision_reason = decided or self._choose_precision()
        self.resumed_from = None
        self.session = (0, time.perf_counter())  # (step, time) at which this session's steps began

    def _choose_precision(self) -> tuple[str, str]:
        c = self.unet_config
        batch = self.config.batch_size
        x = torch.zeros(batch, c.image_channels, c.image_size, c.image_size, device=self.device)
        t = torch.ones(batch, dtype=torch.long, device=self.device)
        # Whatever it runs must not move the run's random streams (dropout draws from them).
        with torch.random.fork_rng(devices=_rng_devices(self.device)):
            choice = choose_precision(self.config.precision, self.device, self.state.model, (x, t))
        return choice.precision, choice.reason

    def _precision_record(self) -> dict:
        return {
            "precision": self.precision,
            "precision_reason": self.precision_reason,
            "device_type": self.device.type,
        }

    def _keep_precision_of(self, checkpoint: dict) -> None:
        # "auto" times both precisions at start-up (or takes a study's decision, which may have
        # been made again meanwhile); keeping the interrupted session's choice keeps the resumed
        # run bit-identical.
        if self.config.precision != "auto" or checkpoint.get("device_type") != self.device.type:
            return
        if checkpoint.get("precision") not in (None, self.precision):
            logger.info(
                "keeping the checkpoint's precision %s (this start would pick %s)",
                checkpoint["precision"],
                self.precision,
            )
        if checkpoint.get("precision"):
            self.precision = checkpoint["precision"]
            self.precision_reason = (
                f"{checkpoint['precision_reason']} (kept from the checkpoint this run resumed)"
            )

    def resume(self) -> None:
        found = find_resumable_checkpoint(self.checkpoint_dir, self.identity, self.config.steps)
        if found is not None:
            self.state.load_state_dict(found)
            self.resumed_from = self.state.step
            self._keep_precision_of(found)
            logger.info(
                "resuming from checkpoint at step %d of %d", self.state.step, self.config.steps
            )
        elif list_checkpoints(self.checkpoint_dir) or any(self.checkpoint_dir.glob("*.unusable")):
            logger.warning(
                "no usable checkpoint in %s; starting over from step 0", self.checkpoint_dir
            )
        else:
            logger.info("no checkpoint in %s; starting from step 0", self.checkpoint_dir)
        self.session = (self.state.step, time.perf_counter())

    def train_step(self) -> None:
        state, config = self.state, self.config
        lr = learning_rate(config, state.step + 1)
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        indices = state.sampler.next_batch()
        if self.device.type == "cuda":
            # From pinned memory the copy does not make the host wait for the device.
            indices = indices.pin_memory().to(self.device, non_blocking=True)
        x0 = to_model_range(self.images[indices])
        if self.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        with autocast_context(self.device, self.precision):
            loss = self.diffusion.training_loss(state.model, x0, generator=state.loss_generator)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), config.grad_clip)
        state.optimizer.step()
        update_ema(state.ema_model, state.model, ema_decay(config, state.step))
        state.step += 1
        state.monitor.add(state.step, lr, loss)

    def check_losses(self) -> None:
        """Read and check the pending losses (raises at a non-finite or diverged step); at the
        last step, a run too short to fill the divergence window is judged on what it has."""
        state, before = self.state, lambda step: _last_checkpoint(self.checkpoint_dir, step)[1]
        state.monitor.check(before)
        if state.step == self.config.steps:
            state.monitor.check_end(state.step, state.optimizer.param_groups[0]["lr"], before)

    def due(self, every: int | None) -> bool:
        step = self.state.step
        return every is not None and (step % every == 0 or step == self.config.steps)

    def log(self, bar) -> None:
        self.check_losses()
        state, config = self.state, self.config
        mean_loss = state.monitor.take_interval_mean()
        lr = state.optimizer.param_groups[0]["lr"]
        state.log_rows.append((state.step, mean_loss, lr, self.state.elapsed()))
        session_step, session_time = self.session
        seconds = max(time.perf_counter() - session_time, 1e-9)
        rate = (state.step - session_step) * config.batch_size / seconds
        eta = (config.steps - state.step) * config.batch_size / max(rate, 1e-9)
        bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
        if bar.disable:
            logger.info(
                "step %d/%d  loss %.4f  lr %.2e  %.1f img/s  ETA %s",
                state.step,
                config.steps,
                mean_loss,
                lr,
                rate,
                _format_duration(eta),
            )

    def take_snapshot(self) -> None:
        state, config = self.state, self.config
        if config.snapshot_every is None or state.snapshot_steps[-1:] == [state.step]:
            return
        self.check_losses()  # never draw from weights that a bad step has touched
        state.snapshot_steps.append(state.step)
        state.snapshot_images.append(
            outputs.snapshot(
                state.ema_model, self.diffusion, config.snapshot_count, config.seed, self
            )
        )

    def checkpoint(self) -> None:
        self.check_losses()  # a checkpoint holds only weights of finite, undiverged steps
        step, previous = _last_checkpoint(self.checkpoint_dir)
        then = (
            f"{previous}, and the run resumes from it once it can write again"
            if step
            else "no checkpoint was written yet: the run starts over once it can write"
        )
        try:
            save_checkpoint(
                self.checkpoint_dir,
                self.identity,
                {**self.state.state_dict(), **self._precision_record()},
                self.config.keep_checkpoints,
            )
        except StorageError as err:
            raise StorageError(
                err.errno,
                f"{err.strerror}; {then}",
                err.filename,
            ) from err

    def stop_if_signalled(self, stop: StopSignals) -> None:
        if stop.received is None:
            return
        self.check_losses()
        step = self.state.step
        if stop.wants_checkpoint and _last_checkpoint(self.checkpoint_dir)[0] != step:
            self.checkpoint()
        resume_step = _last_checkpoint(self.checkpoint_dir)[0]
        name = signal.Signals(stop.received).name
        message = (
            f"training stopped by {name} at step {step} of {self.config.steps}; "
            f"started again, it resumes from step {resume_step}"
        )
        logger.warning("%s", message)
        raise TrainingInterrupted(stop.received, step, resume_step, message)

    def loop(self, stop: StopSignals) -> None:
        config, state = self.config, self.state
        with tqdm(
            total=config.steps,
            initial=state.step,
            desc="training",
            unit="step",
            disable=not sys.stderr.isatty(),
            mininterval=5,
            dynamic_ncols=True,
        ) as bar:
            state.model.train()
            while state.step < config.steps:
                self.train_step()
                bar.update(1)
                if self.due(config.log_every):
                    self.log(bar)
                if self.due(config.snapshot_every):
                    self.take_snapshot()
                if self.due(config.checkpoint_every):
                    self.checkpoint()
                if state.step < config.steps:
                    self.stop_if_signalled(stop)
        self.check_losses()
        # A run resumed at its final step still owes its snapshot if the checkpoint predates it.
        self.take_snapshot()

    def finish(self, extra: Mapping) -> Path:
        wall_seconds = self.state.elapsed()
        record = outputs.run_record(extra, self, self.state, wall_seconds)
        try:
            path = outputs.write_outputs(
                self.run_dir, record, self.state, self.config.snapshot_every is not None
            )
        except StorageError as err:
            raise StorageError(
                err.errno,
                f"{err.strerror}; the checkpoints stay, and training again resumes at the "
                f"final step and only writes the outputs",
                err.filename,
            ) from err
        logger.info(
            "wrote %s (%d steps, last logged loss %s, %s)",
            path,
            self.state.step,
            record["last_interval_loss"],
            _format_duration(wall_seconds),
        )
        return path


def _rng_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _device(config: TrainingConfig) -> torch.device:
    device = resolve_device(config.device)
    if device.type == "cuda" and config.precision == "auto":
        # Any float32 matmul or convolution that autocast leaves alone then uses TF32 tensor cores.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _validate(images, spec: RunSpec, record) -> dict:
    spec.unet.validate()
    spec.training.validate()
    outputs.check_images(images, spec.unet)
    record = dict(record or {})
    clashes = sorted(set(record) & outputs.RECORD_KEYS)
    if clashes:
        raise ConfigError(
            f"record keys {clashes} are reserved for the training record; rename them"
        )
    return record


@contextlib.contextmanager
def _own_run_directory(run_dir: Path):
    """Check ``run_dir`` can be written, lock it, and clear what killed writers left there."""
    checkpoint_dir = run_dir / "checkpoints"
    check_writable(run_dir)
    check_writable(checkpoint_dir)
    with RunDirectoryLock(run_dir):
        # The lock proves that no live writer owns these temporaries.
        stale = remove_stale_temporaries(checkpoint_dir, [CHECKPOINT_NAME_PATTERN])
        stale += remove_stale_temporaries(run_dir, map(re.escape, outputs.OUTPUT_NAMES))
        for path in stale:
            logger.info("removed %s, left by a run killed while writing it", path)
        yield


def train(
    images: torch.Tensor,
    spec: RunSpec,
    run_dir: str | os.PathLike,
    *,
    record: Mapping | None = None,
    precision_choice: PrecisionChoice | None = None,
) -> Path:
    """Train the run ``spec`` on ``images``: a U-Net that predicts the noise of its diffusion;
    return ``run_dir/model.pt``.

    Args:
        images: uint8 tensor (N, C, H, W) with values 0..255; C, H, W those of ``spec.unet``.
        spec: the run (schedule, diffusion, U-Net, training settings, dataset name); written
            into the record of ``model.pt`` and ``run.json``.
        run_dir: directory for the outputs and ``checkpoints/``; created if missing. If it
            holds checkpoints of the same run (same settings, data and code), training
            resumes from the newest intact one.
        record: extra JSON-serialisable fields (e.g. where the data came from) stored at the
            top level of the record.
        precision_choice: the precision, decided beforehand, for ``config.precision ==
            "auto"`` (a study decides once for all its runs: :mod:`ddpm.study_precision`);
            None times the precisions here.

    Raises:
        ConfigError: invalid settings, before any work.
        StorageError: ``run_dir`` cannot be written, or the disk filled up during the run.
        TrainingError: another live process trains in ``run_dir``; or the loss became
            NaN/inf or diverged (the checkpoints written before stay).
        TrainingInterrupted: SIGINT, SIGTERM or SIGUSR1 arrived (a SystemExit with the exit
            status of that signal; see :mod:`ddpm.training.guards`).
    """
    record = _validate(images, spec, record)
    config = spec.training
    run_dir = Path(run_dir)
    device = _device(config)
    with (
        _own_run_directory(run_dir),
        StopSignals() as stop,
        torch_threads(config.num_threads),
        # Dropout and the initial weights draw from torch's global generator: fork it so the
        # caller's stream is untouched, seed it here, save and restore it with checkpoints.
        torch.random.fork_rng(devices=_rng_devices(device)),
    ):
        torch.manual_seed(config.seed)
        decided = precision_choice if config.precision == "auto" else None
        run = _Run(images, spec, run_dir, device, decided)
        logger.info(
            "U-Net with %s parameters; %d steps of batch %d on %s (%s: %s)",
            f"{run.parameter_count:,}",
            config.steps,
            config.batch_size,
            device,
            run.precision,
            run.precision_reason,
        )
        run.resume()
        run.loop(stop)
        return run.finish(record)
