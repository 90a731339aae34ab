"""Converting a dataset of the registry into the one on-disk format (:mod:`.store`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

from .. import ConfigError, DataError
from ..workflow.datasets import DatasetSpec, dataset_spec
from .embedded import EMBEDDED_LOADERS
from .resize import RESIZE_MODES, check_image_size, resize_images
from .store import SPLITS, RawDataset, sha256_of_array, write_dataset_file
from .torchvision_sources import load_torchvision_dataset

__all__ = ["DEFAULT_ROOT", "prepare_dataset"]

logger = logging.getLogger(__name__)

DEFAULT_ROOT = "resources/datasets"


def prepare_dataset(
    name: str,
    out_path: str | os.PathLike,
    image_size: int | None = None,
    root: str | os.PathLike = DEFAULT_ROOT,
    *,
    base_url: str | None = None,
    resize_mode: str = "resize",
    download: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> dict:
    """Convert a dataset into one ``.npz`` file (its layout: :mod:`ddpm.data.store`).

    Args:
        name: a key of :data:`DATASETS`.
        out_path: the ``.npz`` file to write (atomically; an existing file is replaced).
        image_size: side of the stored images; ``None``: the dataset's native size (a
            dataset whose images vary in size needs one).
        root: directory for downloaded files, laid out as torchvision expects
            (e.g. ``root/MNIST/raw/``); unused by embedded datasets.
        base_url: where to fetch torchvision datasets from instead of their usual servers:
            the URL of a directory (``https://``, ``http://`` or ``file://``) that serves the
            files under their usual names. The checksums stay torchvision's.
        resize_mode: ``"resize"`` (antialiased), ``"pad"`` (zero border, only for
            ``image_size`` at least the native size) or ``"nearest"`` (every pixel a k x k
            block, for ``image_size`` a multiple of the native size); see :func:`resize_images`.
        download: fetch missing files; with ``False`` a missing file raises
            :class:`DatasetUnavailable`.
        checksums: md5 per file name replacing the ones torchvision ships, for a mirror that
            serves a different build of the files (unknown file names are an error).

    Returns:
        The ``meta`` record stored in the file, as a dict.
    """
    spec = dataset_spec(name)
    if image_size is None:
        if spec.native_size is None:
            raise ConfigError(
                f"{name} images vary in size: give image_size (dataset_options.{name}.image_size "
                "in a study config, --image-size for ddpm prepare-data), e.g. 32 or 64"
            )
        image_size = spec.native_size
    _check_options(spec, image_size, resize_mode, base_url, checksums)
    out_path = Path(out_path)
    logger.info(
        "preparing %s at %dx%d (%s) -> %s", name, image_size, image_size, resize_mode, out_path
    )
    if spec.source == "embedded":
        raw = EMBEDDED_LOADERS[name]()
    else:
        raw = load_torchvision_dataset(
            name,
            Path(root),
            image_size=image_size,
            base_url=base_url,
            checksums=dict(checksums or {}),
            download=download,
        )
    arrays = _stored_arrays(raw, spec, image_size, resize_mode)
    meta = _meta(spec, raw, arrays, image_size, resize_mode)
    meta = write_dataset_file(out_path, arrays, meta)
    counts = meta["counts"]
    logger.info("wrote %s: %d train / %d test images", out_path, counts["train"], counts["test"])
    return meta


def _check_options(spec: DatasetSpec, image_size, resize_mode, base_url, checksums) -> None:
    """Reject settings that cannot work for ``spec``, before anything is read or fetched."""
    check_image_size(image_size)
    if resize_mode not in RESIZE_MODES:
        raise DataError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    if resize_mode == "nearest" and (spec.native_size is None or image_size % spec.native_size):
        raise DataError(
            f"resize_mode 'nearest' enlarges by a whole factor: image_size must be a multiple of "
            f"{spec.name}'s native size ({spec.native_size}), got {image_size}; use resize_mode "
            "'resize'"
        )
    if resize_mode == "pad":
        if spec.native_size is None:
            raise DataError(
                f"resize_mode 'pad' needs images of one fixed size, but {spec.name} images vary "
                "in size; use resize_mode 'resize'"
            )
        if image_size < spec.native_size:
            raise DataError(
                f"resize_mode 'pad' needs image_size >= {spec.native_size} for {spec.name}, got "
                f"{image_size}; use resize_mode 'resize' to shrink the images"
            )
    if spec.source == "embedded" and (base_url is not None or checksums):
        raise DataError(
            f"{spec.name} ships with an installed package and is never downloaded; remove "
            "base_url / checksums from its settings"
        )


def _stored_arrays(
    raw: RawDataset, spec: DatasetSpec, image_size: int, resize_mode: str
) -> dict[str, np.ndarray]:
    arrays = {
        "train_images": resize_images(raw.train_images, image_size, resize_mode),
        "train_labels": raw.train_labels.astype(np.int64),
        "test_images": resize_images(raw.test_images, image_size, resize_mode),
        "test_labels": raw.test_labels.astype(np.int64),
    }
    for split in SPLITS:
        images = arrays[f"{split}_images"]
        if images.shape[1:] != (spec.channels, image_size, image_size):
            raise DataError(
                f"internal error: {spec.name} {split} images have shape {images.shape[1:]}, "
                f"expected {(spec.channels, image_size, image_size)}"
            )
    return arrays


def _meta(spec: DatasetSpec, raw: RawDataset, arrays, image_size: int, resize_mode: str) -> dict:
    """The ``meta`` record (the writer adds the format version as its first key)."""
    return {
        "name": spec.name,
        "description": spec.description,
        "image_size": image_size,
        "channels": spec.channels,
        "native_size": spec.native_size,
        "resize_mode": resize_mode,
        "source": spec.source,
        "num_classes": spec.num_classes,
        "classes": raw.classes,
        "counts": {split: len(arrays[f"{split}_labels"]) for split in SPLITS},
        "sha256": {key: sha256_of_array(array) for key, array in arrays.items()},
        **raw.provenance,
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("ddpm", "numpy", "torch", "torchvision", "mlxtend", "scikit-learn"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
