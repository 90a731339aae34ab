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
        """Raise :class:`ConfigError` naming the first invalid setting; return self (the checks
        are a list, as :meth:`ddpm.unet_config.UNetConfig.validate`'s)."""
        for check in _CHECKS:
            problem = check(self)
            if problem:
                raise ConfigError(f"TrainingConfig.{problem}")
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


def _integers(config: TrainingConfig) -> str | None:
    # name: (least value, null allowed)
    rules = {
        "steps": (1, False),
        "batch_size": (1, False),
        "warmup_steps": (0, False),
        "checkpoint_every": (1, False),
        "keep_checkpoints": (1, False),
        "log_every": (1, False),
        "snapshot_every": (1, True),
        "snapshot_count": (1, False),
        "seed": (0, False),
        "num_threads": (1, True),
        "divergence_patience": (1, False),
    }
    for name, (least, nullable) in rules.items():
        value = getattr(config, name)
        if value is None and nullable:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            kind = "a non-negative" if least == 0 else "a positive"
            return f"{name} must be {kind} integer{' or null' if nullable else ''}, got {value!r}"
    return None


def _choices(config: TrainingConfig) -> str | None:
    for name, allowed in (("lr_decay", LR_DECAYS), ("precision", PRECISIONS)):
        if getattr(config, name) not in allowed:
            return f"{name} must be one of {allowed}, got {getattr(config, name)!r}"
    return None


def _numbers(config: TrainingConfig) -> str | None:
    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if not number(config.learning_rate) or not 0 < config.learning_rate < math.inf:
        return f"learning_rate must be > 0, got {config.learning_rate!r}"
    if config.grad_clip is not None and (not number(config.grad_clip) or not config.grad_clip > 0):
        return f"grad_clip must be > 0, or null to switch clipping off, got {config.grad_clip!r}"
    if not number(config.ema_decay) or not 0.0 <= config.ema_decay < 1.0:
        return f"ema_decay must be in [0, 1) (0 = no averaging), got {config.ema_decay!r}"
    factor = config.divergence_factor
    if factor is not None and (not number(factor) or not 1 <= factor < math.inf):
        return (
            "divergence_factor must be a number >= 1, or null to switch the divergence check "
            f"off, got {factor!r}"
        )
    return None


def _device(config: TrainingConfig) -> str | None:
    if not isinstance(config.device, str):
        return f"device must be a string such as 'auto', 'cpu', 'cuda', got {config.device!r}"
    return None


_CHECKS = (_integers, _choices, _numbers, _device)
