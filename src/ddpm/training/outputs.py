"""What a training run records: its identity, its record, and the files it leaves."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import FORMAT_VERSION, MODEL_FORMAT, json_ready, package_versions
from ..checkpoints import write_model_file as _write_model_file
from ..diffusion import GaussianDiffusion, from_model_range
from ..files import atomic_save_npz, atomic_write_text
from ..runtime import noise_predictor
from ..unet import UNet, UNetConfig
from .config import RESUMABLE_CHANGES, TrainingConfig, TrainingConfigError
from .state import TrainState

__all__ = ["RECORD_KEYS", "OUTPUT_NAMES", "check_images", "identity", "run_record", "write_outputs"]

# Top-level keys of the record that ``train`` writes; ``record=`` may not override them.
RECORD_KEYS = frozenset(
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
        "precision_reason",
        "code_fingerprint",
        "resumed_from_step",
        "versions",
        "wall_seconds",
    }
)
#: The files of a finished run in its directory (checkpoints/ aside).
OUTPUT_NAMES = ("model.pt", "train_log.csv", "run.json", "snapshots.npz")


def check_images(images: torch.Tensor, unet_config: UNetConfig) -> None:
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


def data_fingerprint(images: torch.Tensor) -> dict:
    digest = hashlib.sha256(images.contiguous().cpu().numpy().tobytes()).hexdigest()
    return {"num_images": int(images.shape[0]), "shape": list(images.shape[1:]), "sha256": digest}


def _describe_diffusion(diffusion: GaussianDiffusion) -> dict:
    return {
        "variance": diffusion.variance,
        "loss": diffusion.loss,
        "clip_denoised": bool(diffusion.clip_denoised),
        "prediction": diffusion.prediction,
    }


def identity(
    config: TrainingConfig,
    unet_config: UNetConfig,
    diffusion: GaussianDiffusion,
    data: dict,
    code: str,
) -> dict:
    """What a checkpoint must agree on to be resumed by this run (``code``: its fingerprint)."""
    training = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    # The label names the schedule; it does not change the weights, so a renamed schedule resumes.
    schedule = {k: v for k, v in diffusion.schedule.describe().items() if k != "label"}
    return json_ready(
        {
            "unet": unet_config.to_dict(),
            "schedule": schedule,
            "diffusion": _describe_diffusion(diffusion),
            "training": training,
            "data": data,
            "code": code,
        }
    )


def run_record(extra: Mapping, run, state: TrainState, wall_seconds: float) -> dict:
    """The record of ``model.pt`` and ``run.json`` of the finished ``run`` (a ``_Run``)."""
    return json_ready(
        {
            **dict(extra),
            "format": MODEL_FORMAT,
            "format_version": FORMAT_VERSION,
            "unet": run.unet_config.to_dict(),
            "schedule": run.diffusion.schedule.describe(),
            "diffusion": _describe_diffusion(run.diffusion),
            "training": run.config.to_dict(),
            "seed": run.config.seed,
            "parameter_count": run.parameter_count,
            "steps_trained": state.step,
            "final_loss": state.log_rows[-1][1] if state.log_rows else None,
            "data": run.identity["data"],
            "device": str(run.device),
            "precision": run.precision,
            "precision_reason": run.precision_reason,
            "code_fingerprint": run.identity["code"],
            "resumed_from_step": run.resumed_from,
            "versions": package_versions(),
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
        steps=min(diffusion.T, 50),
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
