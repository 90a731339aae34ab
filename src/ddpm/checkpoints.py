"""The files a training run leaves: rolling checkpoints and the final model file.

``model.pt`` holds the EMA weights and the record needed to rebuild model and
diffusion (:func:`load_model`). Checkpoints (``checkpoints/step-NNNNNNNN.pt``) hold the
whole training state; :func:`find_resumable_checkpoint` returns the newest one that
belongs to the same run and moves unusable ones aside. Every file is written
atomically and read with ``weights_only=True``, so a file cannot run code.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from pathlib import Path

import numpy as np
import torch

from .diffusion import GaussianDiffusion
from .files import atomic_write
from .runtime import resolve_device
from .schedules import make_schedule
from .unet import UNet, UNetConfig, UNetConfigError

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "MODEL_FORMAT",
    "ModelFileError",
    "find_resumable_checkpoint",
    "list_checkpoints",
    "load_model",
    "save_checkpoint",
    "write_model_file",
]

logger = logging.getLogger(__name__)

MODEL_FORMAT = "ddpm-model"
CHECKPOINT_FORMAT = "ddpm-checkpoint"
FORMAT_VERSION = 1
_CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.pt$")


class ModelFileError(ValueError):
    """A model file is corrupt, incomplete or was written by an incompatible version."""


# --- records -------------------------------------------------------------------------------
def json_ready(value):
    """A copy of ``value`` with only JSON types (numpy scalars and tuples converted)."""

    def convert(obj):
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    return json.loads(json.dumps(value, default=convert))


def package_versions() -> dict:
    from . import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "ddpm": __version__,
    }


# --- checkpoints -------------------------------------------------------------------------
def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file, newest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _CHECKPOINT_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def find_resumable_checkpoint(directory: Path, identity: dict, max_step: int) -> dict | None:
    """Load the newest usable checkpoint; move unusable newer ones aside, with a warning each."""
    for step, path in list_checkpoints(directory):
        problem = None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or garbled file raises many kinds of errors
            problem = f"it is unreadable ({type(err).__name__}: {err})"
        else:
            if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                problem = "it is not a training checkpoint"
            elif state.get("format_version") != FORMAT_VERSION:
                problem = f"it has format version {state.get('format_version')}, this code reads {FORMAT_VERSION}"
            elif state.get("identity") != identity:
                problem = (
                    "it was written with different model, diffusion, training or data settings"
                )
            elif state.get("step") != step or step > max_step:
                problem = f"its step {state.get('step')} does not fit a run of {max_step} steps"
        if problem is None:
            return state
        aside = path.with_name(path.name + ".unusable")
        os.replace(path, aside)
        logger.warning(
            "cannot resume from checkpoint %s: %s; moved it aside to %s and trying an older one",
            path,
            problem,
            aside.name,
        )
    return None


def save_checkpoint(directory: Path, state: dict, keep: int) -> Path:
    path = directory / f"step-{state['step']:08d}.pt"
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    for _, old in list_checkpoints(directory)[keep:]:
        old.unlink(missing_ok=True)
    return path


def write_model_file(path: str | os.PathLike, record: dict, ema_model: torch.nn.Module) -> Path:
    """Write ``model.pt``: the record and the EMA weights (on the CPU), atomically."""
    ema_state = {k: v.detach().cpu().contiguous() for k, v in ema_model.state_dict().items()}
    content = {"record": record, "ema_state_dict": ema_state}
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(content, tmp))
    return path


# --- loading -----------------------------------------------------------------------------
def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[UNet, GaussianDiffusion, dict]:
    """Rebuild the EMA model (in eval mode), its diffusion and its record from ``model.pt``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ModelFileError: the file is corrupt, not a model file, or incompatible with this code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no model file at {path}; train one first (`ddpm train` or ddpm.training.train)"
        )
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelFileError(
            f"{path} is not a readable model file ({type(err).__name__}: {err}); it may be truncated: "
            f"delete it and train again"
        ) from err
    if not isinstance(content, dict) or "record" not in content or "ema_state_dict" not in content:
        raise ModelFileError(
            f"{path} is not a ddpm model file (expected keys 'record' and 'ema_state_dict')"
        )
    record = content["record"]
    if record.get("format") != MODEL_FORMAT or record.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format {record.get('format')!r} version {record.get('format_version')!r}; this code reads "
            f"{MODEL_FORMAT!r} version {FORMAT_VERSION}; train the model again with this version"
        )
    try:
        unet_config = UNetConfig.from_dict(record["unet"]).validate()
        schedule_desc = record["schedule"]
        schedule = make_schedule(
            schedule_desc["beta_schedule"], schedule_desc["T"], **schedule_desc["params"]
        )
        diffusion = GaussianDiffusion(schedule, **record["diffusion"])
        model = UNet(unet_config)
        model.load_state_dict(content["ema_state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, UNetConfigError) as err:
        raise ModelFileError(
            f"{path} cannot be rebuilt by this version of ddpm: {type(err).__name__}: {err}"
        ) from err
    model.eval().to(resolve_device(device))
    return model, diffusion, record
