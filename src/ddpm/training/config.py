"""The settings of a training run, validated before any work."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from .. import ConfigError
from ..runtime import PRECISIONS

__all__ = ["LR_DECAYS", "RESUMABLE_CHANGES", "TrainingConfig"]

#: How the learning rate moves after the warm-up (:func:`ddpm.training.state.learning_rate`).
LR_DECAYS = ("none", "cosine")

# Settings that may change between an interrupted run and its resumption without changing
# the weights it computes (only where, how fast, how long, and what is logged or watched).
RESUMABLE_CHANGES = (
    "steps",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "snapshot_every",
    "device",
    "precision",
    "num_threads",
    "divergence_factor",
    "divergence_patience",
)


def _check_divergence_factor(value) -> None:
    if value is not None and (
        not isinstance(value, int | float) or isinstance(value, bool) or not 1 <= value < math.inf
    ):
        raise ConfigError(
            "TrainingConfig.divergence_factor must be a number >= 1, or null to switch the "
            f"divergence check off, got {value!r}"
        )


@dataclass(frozen=True)
class TrainingConfig:
    """How to train.

    Args:
        steps: optimizer steps in total (a resumed run continues up to this number).
        batch_size: images per step.
        learning_rate: Adam's learning rate after warm-up (Ho et al.: 2e-4).
        lr_decay: after the warm-up, ``"none"`` keeps the learning rate, ``"cosine"`` lets it
            fall along a half cosine to 0 at the last step (``steps`` then shapes the weights:
            a run cannot resume with another ``steps``).
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
        precision: ``"auto"`` (on a GPU with bf16: bf16 autocast + TF32 + channels_last; on
            a CPU: bf16 autocast only where the CPU runs bf16 natively and a timed training
            step says it is faster, else float32, in channels_last on x86; the workflow decides
            once per study and machine, :mod:`ddpm.study_precision`), ``"bf16"`` (bf16
            autocast on any device; emulated and slow on a CPU without native bf16) or
            ``"fp32"``.
        num_threads: CPU threads for torch during training; ``None`` = leave as is.
        divergence_factor: stop with :class:`~ddpm.training.TrainingError` when the mean
            loss over the last ``divergence_patience`` steps exceeds this many times the
            reference level (see :mod:`ddpm.training.monitor`); ``None`` = never.
        divergence_patience: the number of steps that mean is taken over.
    """

    steps: int
    batch_size: int = 128
    learning_rate: float = 2e-4
    warmup_steps: int = 0
    lr_decay: str = "none"
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
    divergence_factor: float | None = 100.0
    divergence_patience: int = 100

    def validate(self) -> TrainingConfig:
        """Raise :class:`ConfigError` naming the first invalid setting; return self."""

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
                raise ConfigError(
                    f"TrainingConfig.{name} must be {kind} integer{none}, got {value!r}"
                )

        positive_int("steps", self.steps)
        positive_int("batch_size", self.batch_size)
        positive_int("warmup_steps", self.warmup_steps, allow_zero=True)
        if self.lr_decay not in LR_DECAYS:
            raise ConfigError(
                f"TrainingConfig.lr_decay must be one of {LR_DECAYS}, got {self.lr_decay!r}"
            )
        positive_int("checkpoint_every", self.checkpoint_every)
        positive_int("keep_checkpoints", self.keep_checkpoints)
        positive_int("log_every", self.log_every)
        positive_int("snapshot_every", self.snapshot_every, allow_none=True)
        positive_int("snapshot_count", self.snapshot_count)
        positive_int("seed", self.seed, allow_zero=True)
        positive_int("num_threads", self.num_threads, allow_none=True)
        positive_int("divergence_patience", self.divergence_patience)
        _check_divergence_factor(self.divergence_factor)
        if not isinstance(self.learning_rate, int | float) or not 0 < self.learning_rate < math.inf:
            raise ConfigError(
                f"TrainingConfig.learning_rate must be > 0, got {self.learning_rate!r}"
            )
        if self.grad_clip is not None and (
            not isinstance(self.grad_clip, int | float) or not self.grad_clip > 0
        ):
            raise ConfigError(
                f"TrainingConfig.grad_clip must be > 0, or null to switch clipping off, got {self.grad_clip!r}"
            )
        if not isinstance(self.ema_decay, int | float) or not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(
                f"TrainingConfig.ema_decay must be in [0, 1) (0 = no averaging), got {self.ema_decay!r}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"TrainingConfig.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if not isinstance(self.device, str):
            raise ConfigError(
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
            raise ConfigError(
                f"unknown training setting(s) {unknown}; the settings are {sorted(allowed)}"
            )
        return cls(**values)
