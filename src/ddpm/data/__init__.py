"""Datasets: a registry, verified downloads, and one on-disk format.

Every dataset is converted once (:func:`prepare_dataset`) into a single ``.npz`` file, which
training, sampling and evaluation read back with :func:`load_split` and :func:`load_meta`.

- :mod:`ddpm.dataset_registry`: what each dataset is (re-exported here; importable without PyTorch).
- :mod:`.store`: the file format, its writer and readers; the format version is checked on read.
- :mod:`.prepare`: :func:`prepare_dataset`, from a source to the file.
- :mod:`.embedded`: ``mnist5k`` and ``digits``, shipped with installed packages, split by content.
- :mod:`.torchvision_sources`: MNIST, Fashion-MNIST, CIFAR-10, FGVC-Aircraft, fetched once.
- :mod:`.download`: the verified atomic downloader (also used for the Inception weights).
- :mod:`.archives`, :mod:`.resize`, :mod:`.photos`, :mod:`.raw`, :mod:`.errors`: the helpers.

The names below are imported on first use (PEP 562), so that a module using one part (the
Inception weights use :mod:`.download` only) neither loads nor depends on the others.
"""

from __future__ import annotations

from ..dataset_registry import DATASETS, DatasetError, DatasetSpec, dataset_spec
from ..lazy import lazy_exports

# Public name -> the submodule that defines it.
_EXPORTS = {
    "DEFAULT_ROOT": "prepare",
    "DIGIT": "photos",
    "FORMAT_VERSION": "store",
    "PHOTOS": "photos",
    "RESIZE_MODES": "resize",
    "SPLITS": "store",
    "DatasetChecksumError": "errors",
    "DatasetNotPrepared": "errors",
    "DatasetUnavailable": "errors",
    "download_verified": "download",
    "load_meta": "store",
    "load_digit": "photos",
    "load_photo": "photos",
    "load_split": "store",
    "prepare_dataset": "prepare",
    "resize_images": "resize",
}

__all__ = [
    "DATASETS",
    "DEFAULT_ROOT",
    "DIGIT",
    "DatasetChecksumError",
    "DatasetError",
    "DatasetNotPrepared",
    "DatasetSpec",
    "DatasetUnavailable",
    "FORMAT_VERSION",
    "PHOTOS",
    "RESIZE_MODES",
    "SPLITS",
    "dataset_spec",
    "download_verified",
    "load_digit",
    "load_meta",
    "load_photo",
    "load_split",
    "prepare_dataset",
    "resize_images",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
