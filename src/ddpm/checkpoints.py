"""The files a training run leaves: rolling checkpoints and the final model file.

``model.pt`` holds the EMA weights and the record needed to rebuild model and
diffusion (:func:`load_model`). Checkpoints (``checkpoints/step-NNNNNNNN.pt``) hold the
whole training state; :func:`find_resumable_checkpoint` returns the newest one that
belongs to the same run and moves unusable ones aside. Every file is written
atomically and read with ``weights_only=True``, so a file cannot run code.

Every file also carries a SHA-256 of its content (``"sha256"``: over every tensor's dtype,
shape and bytes and every other value, in order; see :func:`content_digest`), computed
when it is saved and checked when it is read. Bit rot or a torn write that still
unpickles thus cannot be resumed from or sampled with unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from . import ConfigError, ModelFileError
from .diffusion import GaussianDiffusion
from .files import atomic_write
from .runtime import resolve_device
from .spec import RunSpec
from .unet import UNet

__all__ = [
    "CHECKPOINT_FORMAT",
    "FORMAT_VERSION",
    "MODEL_FORMAT",
    "content_digest",
    "find_resumable_checkpoint",
    "list_checkpoints",
    "load_model",
    "save_checkpoint",
    "seal",
    "write_model_file",
]

logger = logging.getLogger(__name__)

MODEL_FORMAT = "ddpm-model"
CHECKPOINT_FORMAT = "ddpm-checkpoint"
# Version 2 added the content checksum, version 3 made the record the run's spec. Files of
# another version are refused with a message to train again (the study regenerates quickly).
FORMAT_VERSION = 3
CHECKPOINT_NAME_PATTERN = r"step-\d+\.pt"
_CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.pt$")
_DIGEST_KEY = "sha256"


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


# --- checksums ---------------------------------------------------------------------------
def _feed(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)};".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"L{len(value)};".encode())
        for item in value:
            _feed(digest, item)
    elif value is None or isinstance(value, str | int | float | bool):
        digest.update(f"{type(value).__name__}:{value!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(value).__name__} in a checkpoint or model file")


def content_digest(content: Mapping) -> str:
    """SHA-256 over ``content`` except its own ``"sha256"`` entry (tensors by dtype, shape, bytes)."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in content.items() if k != _DIGEST_KEY})
    return digest.hexdigest()


def seal(content: dict) -> dict:
    """``content`` with its checksum, ready to save."""
    return {
        **{k: v for k, v in content.items() if k != _DIGEST_KEY},
        _DIGEST_KEY: content_digest(content),
    }


def _damage(content: Mapping) -> str | None:
    """Why ``content`` fails its checksum, or None when it passes."""
    stored = content.get(_DIGEST_KEY)
    if stored is None:
        return "it has no checksum"
    if stored != content_digest(content):
        return "its content does not match the checksum stored with it: the file is damaged"
    return None


def _save(content: dict, path: Path) -> Path:
    """``torch.save`` through a Python file, so a full disk raises OSError(ENOSPC) (not a
    RuntimeError of the zip writer), which :func:`atomic_write` turns into a clear message."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(content, handle)

    return atomic_write(path, write)


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


def _checkpoint_problem(state, step: int, identity: dict, max_step: int) -> str | None:
    """Why the loaded checkpoint ``state`` (named for ``step``) cannot be resumed, or None."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        return "it is not a training checkpoint"
    if state.get("format_version") != FORMAT_VERSION:
        return (
            f"it has format version {state.get('format_version')}, this code reads {FORMAT_VERSION}"
        )
    damage = _damage(state)
    if damage is not None:
        return damage
    theirs = dict(state.get("identity") or {})
    ours = dict(identity)
    if theirs.pop("code", None) != ours.pop("code", None) and theirs == ours:
        return (
            "it was written by different code (the library modules the weights depend on "
            "have changed since), so the run computes afresh"
        )
    if theirs != ours:
        return "it was written with different model, diffusion, training or data settings"
    if state.get("step") != step or step > max_step:
        return f"its step {state.get('step')} does not fit a run of {max_step} steps"
    return None


def find_resumable_checkpoint(directory: Path, identity: dict, max_step: int) -> dict | None:
    """Load the newest usable checkpoint; move unusable newer ones aside, with a warning each.

    ``identity`` is what the checkpoint must agree on (settings, data and, under ``"code"``,
    the fingerprint of the code); a checkpoint that is damaged or disagrees becomes
    ``<name>.unusable``.
    """
    for step, path in list_checkpoints(directory):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or garbled file raises many kinds of errors
            problem = f"it is unreadable ({type(err).__name__}: {err})"
        else:
            problem = _checkpoint_problem(state, step, identity, max_step)
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


def save_checkpoint(directory: Path, identity: dict, state: dict, keep: int) -> Path:
    """Write ``state`` (with a ``"step"``) as ``step-NNNNNNNN.pt``; keep the ``keep`` newest."""
    content = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "identity": identity,
        **state,
    }
    path = _save(seal(content), directory / f"step-{state['step']:08d}.pt")
    for _, old in list_checkpoints(directory)[keep:]:
        old.unlink(missing_ok=True)
    return path


def write_model_file(path: str | os.PathLike, record: dict, ema_model: torch.nn.Module) -> Path:
    """Write ``model.pt``: the record and the EMA weights (on the CPU), atomically."""
    ema_state = {k: v.detach().cpu().contiguous() for k, v in ema_model.state_dict().items()}
    return _save(seal({"record": record, "ema_state_dict": ema_state}), Path(path))


# --- loading -----------------------------------------------------------------------------
def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[UNet, GaussianDiffusion, dict]:
    """Rebuild the EMA model (in eval mode), its diffusion and its record from ``model.pt``.

    Raises:
        ModelFileError: no file at ``path``, or the file is corrupt, not a model file, or
            incompatible with this code.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
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
    record = content["record"] if isinstance(content["record"], dict) else {}
    version = record.get("format_version")
    if record.get("format") != MODEL_FORMAT or version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format {record.get('format')!r} version {version!r}; this code reads "
            f"{MODEL_FORMAT!r} version {FORMAT_VERSION}: train the model again with this version"
        )
    damage = _damage(content)
    if damage is not None:
        raise ModelFileError(
            f"{path} cannot be used: {damage}. Train again (its run directory's checkpoints, if "
            f"intact, let the training resume), or restore the file from a copy"
        )
    try:
        diffusion, unet_config, _ = RunSpec.from_dict(record).build()
        model = UNet(unet_config)
        model.load_state_dict(content["ema_state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as err:
        raise ModelFileError(
            f"{path} cannot be rebuilt by this version of ddpm: {type(err).__name__}: {err}"
        ) from err
    model.eval().to(resolve_device(device))
    return model, diffusion, record
