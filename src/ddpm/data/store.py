"""The on-disk format of a prepared dataset: one ``.npz`` file, written atomically, read back
with its format version checked.

The file holds

- ``train_images``, ``test_images``: uint8 arrays of shape (N, C, H, W) with H = W = image_size,
- ``train_labels``, ``test_labels``: int64 class indices of shape (N,),
- ``meta``: a JSON string (format version, name, image size, channels, resize mode, source,
  counts, class names, sha256 of every array, md5 of the downloaded files).

A file whose ``format_version`` is not :data:`FORMAT_VERSION` is refused on read, with the advice
to prepare it again, rather than read as if its layout were the current one.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import DataError
from ..files import atomic_save_npz

__all__ = [
    "RawDataset",
    "FORMAT_VERSION",
    "SPLITS",
    "load_meta",
    "load_split",
    "sha256_of_array",
    "write_dataset_file",
]

SPLITS = ("train", "test")
FORMAT_VERSION = 1
"""Raise it whenever the layout of the file changes, so that older files are refused on read."""


@dataclass
class RawDataset:
    """Both splits as uint8 (N, C, H, W) arrays and int64 labels, before resizing."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    provenance: dict = field(default_factory=dict)

    @classmethod
    def from_splits(
        cls,
        splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
        classes: list[str],
        provenance: dict,
    ) -> RawDataset:
        """From ``{"train": (images, labels), "test": (images, labels)}``."""
        return cls(
            train_images=splits["train"][0],
            train_labels=splits["train"][1],
            test_images=splits["test"][0],
            test_labels=splits["test"][1],
            classes=classes,
            provenance=provenance,
        )


def _prepare_hint(path: Path) -> str:
    return (
        f"Create it with `ddpm prepare-data DATASET {path} --image-size N` (the workflow's "
        "prepare_dataset rule does this), or ddpm.data.prepare_dataset(DATASET, path, N)."
    )


def _read_npz(path: str | os.PathLike, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``keys`` from a prepared file, turning every failure into a readable error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Dataset file {path} does not exist. {_prepare_hint(path)}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in keys if key not in npz.files]
            if missing:
                raise DataError(
                    f"Dataset file {path} lacks {missing} (it holds {sorted(npz.files)}); it "
                    f"was not written by ddpm.data.prepare_dataset. Delete it. "
                    f"{_prepare_hint(path)}"
                )
            # Reading inside the context: NpzFile is lazy, and a damaged member only fails here.
            return {key: npz[key] for key in keys}
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as error:
        raise DataError(
            f"Dataset file {path} is corrupt or incomplete ({type(error).__name__}: {error}). "
            f"Delete it and prepare it again. {_prepare_hint(path)}"
        ) from error


def _parse_meta(path: Path, raw: np.ndarray) -> dict:
    """The ``meta`` record, refused unless it is in the current format version."""
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise DataError(
            f"Dataset file {path} has an unreadable meta record ({error}). Delete it and "
            f"prepare it again. {_prepare_hint(path)}"
        ) from error
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise DataError(
            f"Dataset file {path} is in format version {version}, but this version of ddpm "
            f"reads format version {FORMAT_VERSION}. Re-run the prepare step: delete the file "
            f"and prepare it again. {_prepare_hint(path)}"
        )
    return meta


def load_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` record of a prepared dataset file (see :func:`ddpm.data.prepare_dataset`)."""
    return _parse_meta(Path(path), _read_npz(path, ["meta"])["meta"])


def load_split(path: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split of a prepared dataset file.

    Returns:
        ``(images, labels)``: a uint8 tensor (N, C, H, W) in [0, 255] and an int64 tensor (N,).
        Use ``ddpm.diffusion.to_model_range`` to bring the images to [-1, 1].
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    arrays = _read_npz(path, ["meta", f"{split}_images", f"{split}_labels"])
    _parse_meta(Path(path), arrays["meta"])
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or labels.dtype != np.int64:
        raise DataError(
            f"Dataset file {path}: {split} images must be uint8 (N, C, H, W) and labels int64, "
            f"got {images.dtype} {images.shape} and {labels.dtype}. Delete it. "
            f"{_prepare_hint(Path(path))}"
        )
    if labels.shape != (images.shape[0],):
        raise DataError(
            f"Dataset file {path}: {images.shape[0]} {split} images but labels of shape "
            f"{labels.shape}. Delete it. {_prepare_hint(Path(path))}"
        )
    return torch.from_numpy(images), torch.from_numpy(labels)


def write_dataset_file(path: Path, arrays: Mapping[str, np.ndarray], meta: dict) -> dict:
    """Write ``arrays`` and ``meta`` atomically: readers (and Snakemake) never see a
    half-written dataset file. Returns ``meta`` as stored: stamped with :data:`FORMAT_VERSION`
    as its first key, so that :func:`load_split` accepts the file."""
    meta = {"format_version": FORMAT_VERSION, **meta}
    atomic_save_npz(path, compressed=False, **arrays, meta=np.array(json.dumps(meta, indent=1)))
    return meta


def sha256_of_array(array: np.ndarray) -> str:
    """The sha256 of an array's bytes in C order, as recorded in ``meta``."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
