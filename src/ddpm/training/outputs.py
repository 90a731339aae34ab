"""What a training run records: its identity, its record, and the files it leaves.

The identity (what a checkpoint must agree on to be resumed) and the record (``model.pt`` and
``run.json``) are both made from the run's :class:`~ddpm.spec.RunSpec`: the record holds
:meth:`~ddpm.spec.RunSpec.to_dict` and what the run measured; the identity is the spec without
what may change between an interrupted run and its resumption (:data:`RESUMABLE_CHANGES`, the
schedule's label, the dataset's name), plus the data and the code that compute the weights.

The code is :func:`code_fingerprint`: :func:`ddpm.workflow.code.code_digest` of the import
closure of ``ddpm.training.loop`` (every ddpm module the training imports, directly or not, read
from the sources), so a comment, a docstring, a log message or a version bump keeps a
half-finished run resumable, and an edit of what the code computes starts it afresh.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .. import ConfigError
from ..checkpoints import FORMAT_VERSION, MODEL_FORMAT, json_ready
from ..checkpoints import write_model_file as _write_model_file
from ..diffusion import GaussianDiffusion, from_model_range
from ..files import atomic_save_npz, atomic_write_text
from ..provenance import machine, package_versions, source_revision
from ..runtime import noise_predictor
from ..spec import RunSpec
from ..unet import UNet
from ..unet_config import UNetConfig
from ..workflow.code import PACKAGE_DIR, code_digest, module_closure
from .config import RESUMABLE_CHANGES
from .state import TrainState

__all__ = [
    "OUTPUT_NAMES",
    "RECORD_KEYS",
    "SNAPSHOT_DDIM_STEPS",
    "check_images",
    "code_fingerprint",
    "identity",
    "run_record",
    "write_outputs",
]

#: Snapshots are DDIM previews of at most this many steps (T where T is smaller), not the
#: study's sampler: they show training progress cheaply.
SNAPSHOT_DDIM_STEPS = 50

# Top-level keys of the record that ``train`` writes; ``record=`` may not override them.
RECORD_KEYS = frozenset(
    {
        "format",
        "format_version",
        "unet",
        "schedule",
        "diffusion",
        "training",
        "dataset",
        "seed",
        "parameter_count",
        "steps_trained",
        "last_interval_loss",
        "data",
        "device",
        "precision",
        "precision_reason",
        "code_fingerprint",
        "resumed_from_step",
        "versions",
        "source",
        "machine",
        "wall_seconds",
    }
)
#: The files of a finished run in its directory (checkpoints/ aside).
OUTPUT_NAMES = ("model.pt", "train_log.csv", "run.json", "snapshots.npz")


def check_images(images: torch.Tensor, unet_config: UNetConfig) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        desc = f"{type(images).__name__} {getattr(images, 'dtype', '')} {tuple(getattr(images, 'shape', ()))}"
        raise ConfigError(f"images must be a uint8 tensor of shape (N, C, H, W), got {desc}")
    expected = (unet_config.image_channels, unet_config.image_size, unet_config.image_size)
    if tuple(images.shape[1:]) != expected:
        raise ConfigError(
            f"images have shape (C, H, W) = {tuple(images.shape[1:])} but the U-Net config expects {expected}; "
            f"set image_channels/image_size to match the data"
        )
    if images.shape[0] == 0:
        raise ConfigError("images is empty; training needs at least one image")


def data_fingerprint(images: torch.Tensor) -> dict:
    digest = hashlib.sha256(images.contiguous().cpu().numpy().tobytes()).hexdigest()
    return {"num_images": int(images.shape[0]), "shape": list(images.shape[1:]), "sha256": digest}


def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """What the training's code computes: the digest of the import closure of its loop
    (``package_dir``: the ``ddpm`` directory to read, another checkout's, say)."""
    modules = module_closure("ddpm.training.loop", Path(package_dir))
    return code_digest(modules, Path(package_dir))


def identity(spec: RunSpec, data: dict, code: str) -> dict:
    """What a checkpoint must agree on to be resumed by the run of ``spec`` (``code``: the
    training code's fingerprint). The schedule's label and the dataset's name do not change the
    weights, so a renamed schedule or dataset resumes."""
    record = spec.to_dict()
    # With a decaying learning rate the number of steps shapes every step's update.
    resumable = set(RESUMABLE_CHANGES) - ({"steps"} if spec.training.lr_decay != "none" else set())
    training = {k: v for k, v in record["training"].items() if k not in resumable}
    schedule = {k: v for k, v in record["schedule"].items() if k != "label"}
    return json_ready(
        {
            "unet": record["unet"],
            "schedule": schedule,
            "diffusion": record["diffusion"],
            "training": training,
            "data": data,
            "code": code,
        }
    )


def run_record(extra: Mapping, run, state: TrainState, wall_seconds: float) -> dict:
    """The record of ``model.pt`` and ``run.json`` of the finished ``run`` (a ``_Run``): its
    spec (:meth:`~ddpm.spec.RunSpec.to_dict`), what it measured, and where it ran."""
    return json_ready(
        {
            **dict(extra),
            "format": MODEL_FORMAT,
            "format_version": FORMAT_VERSION,
            **run.spec.to_dict(),
            "seed": run.spec.seed,
            "parameter_count": run.parameter_count,
            "steps_trained": state.step,
            # The mean loss of the last log interval (the results table's final_loss is the
            # mean over the last tenth of the log instead).
            "last_interval_loss": state.log_rows[-1][1] if state.log_rows else None,
            "data": run.identity["data"],
            "device": str(run.device),
            "precision": run.precision,
            "precision_reason": run.precision_reason,
            "code_fingerprint": run.identity["code"],
            "resumed_from_step": run.resumed_from,
            "versions": package_versions(),
            "source": source_revision(),
            "machine": machine(),
            "wall_seconds": wall_seconds,
        }
    )


@torch.no_grad()
def snapshot(
    ema_model: UNet, diffusion: GaussianDiffusion, count: int, seed: int, run
) -> torch.Tensor:
    """EMA-model DDIM samples from a fixed noise seed (so snapshots show the same noise evolving)."""
    c = ema_model.config
    images = diffusion.ddim_sample(
        noise_predictor(ema_model, run.device, run.precision, run.channels_last),
        (count, c.image_channels, c.image_size, c.image_size),
        steps=min(diffusion.T, SNAPSHOT_DDIM_STEPS),
        eta=0.0,
        generator=torch.Generator().manual_seed(seed),
        device=run.device,
    )
    return from_model_range(images).cpu()


def _write_log_csv(path: Path, rows: list) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "loss", "lr", "seconds"])
    for step, loss, lr, seconds in rows:
        writer.writerow([step, repr(float(loss)), repr(float(lr)), f"{seconds:.3f}"])
    atomic_write_text(path, buffer.getvalue())


def write_outputs(run_dir: Path, record: dict, state: TrainState, snapshots: bool) -> Path:
    """Write snapshots, log, run.json and, last, model.pt (the rule's target)."""
    if snapshots:
        arrays = {
            "steps": np.asarray(state.snapshot_steps, dtype=np.int64),
            "images": torch.stack(state.snapshot_images).numpy().astype(np.uint8),
        }
        atomic_save_npz(run_dir / "snapshots.npz", **arrays)
    _write_log_csv(run_dir / "train_log.csv", state.log_rows)
    atomic_write_text(run_dir / "run.json", json.dumps(record, indent=2) + "\n")
    return _write_model_file(run_dir / "model.pt", record, state.ema_model)
