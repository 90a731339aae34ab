"""MNIST, Fashion-MNIST, CIFAR-10 and FGVC-Aircraft, fetched and parsed through torchvision.

Files are fetched once into ``root`` in the directory layout torchvision expects, verified
against the md5 sums torchvision ships, and parsed by the torchvision dataset classes.
``base_url`` replaces the download location (a mirror, or a local directory through
``file://``) but never the checksums. Files already in ``root`` are reused without network, so
a machine without internet works once the files are copied there by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from .. import DataError
from .archives import decompress_gzip_atomically, extract_folder_atomically
from .download import (
    DatasetChecksumError,
    RemoteFile,
    ensure_local_copy,
    join_url,
    progress_bar,
)
from .store import RawDataset

__all__ = ["TORCHVISION_DATASETS", "load_torchvision_dataset"]

logger = logging.getLogger(__name__)

TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar10", "fgvc_aircraft")

# FGVC-Aircraft: torchvision ships no checksum for the archive; this is the md5 published
# next to it on the dataset page (archives/fgvc-aircraft-2013b.html).
_FGVC_AIRCRAFT_MD5 = "d4acdd33327262359767eeaa97a4f732"
# Each FGVC-Aircraft photo carries a 20-pixel copyright banner at the bottom; the dataset's
# README asks that it be removed before training or evaluating.
_FGVC_AIRCRAFT_BANNER_PX = 20
# Labels used for FGVC-Aircraft: the 100 model variants (e.g. "737-700"), the level its
# benchmark is defined on; the coarser "family" level has 70 classes.
_FGVC_AIRCRAFT_LABELS = "variant"


def load_torchvision_dataset(
    name: str,
    root: Path,
    *,
    image_size: int,
    base_url: str | None,
    checksums: Mapping[str, str],
    download: bool,
) -> RawDataset:
    """Both splits of ``name`` (a key of :data:`TORCHVISION_DATASETS`), fetched if needed.

    ``image_size`` matters only for FGVC-Aircraft, whose photos of varying sizes are cropped
    and resized while they are decoded; the others come at their native size.
    """
    fetch = {"base_url": base_url, "checksums": dict(checksums), "download": download}
    if name in ("mnist", "fashion_mnist"):
        return _load_mnist_like(name, root, **fetch)
    if name == "cifar10":
        return _load_cifar10(root, **fetch)
    if name == "fgvc_aircraft":
        return _load_fgvc_aircraft(root, image_size, **fetch)
    raise DataError(f"{name!r} is not a torchvision dataset; those are {TORCHVISION_DATASETS}")


def _check_checksum_keys(dataset: str, checksums: Mapping[str, str], known: Sequence[str]):
    unknown = sorted(set(checksums) - set(known))
    if unknown:
        raise DataError(
            f"checksums for {dataset} name unknown files {unknown}; its files are {list(known)}"
        )


def _mnist_like_class(
    name: str, tv_class: type, base_url: str | None, checksums: Mapping[str, str]
) -> type:
    """``tv_class`` (MNIST or FashionMNIST) with its mirrors and md5s replaced.

    The subclass keeps the class name, because torchvision names the data directory
    after it (``root/MNIST/raw``).
    """
    _check_checksum_keys(name, checksums, [filename for filename, _ in tv_class.resources])
    return type(
        tv_class.__name__,
        (tv_class,),
        {
            "mirrors": [base_url] if base_url else list(tv_class.mirrors),
            "resources": [(f, checksums.get(f, md5)) for f, md5 in tv_class.resources],
        },
    )


def _load_mnist_like(
    name: str, root: Path, *, base_url: str | None, checksums: Mapping[str, str], download: bool
) -> RawDataset:
    import torchvision.datasets as tvd

    tv_class = _mnist_like_class(
        name, {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name], base_url, checksums
    )
    raw_folder = root / tv_class.__name__ / "raw"
    files = [
        RemoteFile(filename, md5, tuple(join_url(m, filename) for m in tv_class.mirrors))
        for filename, md5 in tv_class.resources
    ]
    for remote in files:
        # torchvision reads the decompressed idx files; it considers them present when they
        # exist, and they only ever appear here whole (decompressed under a temporary name).
        decompressed = raw_folder / remote.filename.removesuffix(".gz")
        if decompressed.is_file():
            continue
        archive = ensure_local_copy(
            remote, raw_folder, dataset=name, download=download, all_files=files
        )
        decompress_gzip_atomically(archive, decompressed)

    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            dataset = tv_class(root=str(root), train=train, download=False)
        except (RuntimeError, TypeError, ValueError, AssertionError) as error:
            raise DataError(
                f"torchvision could not read {name} from {raw_folder} ({error}); delete the "
                "files there and prepare again"
            ) from error
        splits[split] = (dataset.data.numpy()[:, None], dataset.targets.numpy())
    return RawDataset.from_splits(
        splits,
        classes=list(tv_class.classes),
        provenance={
            "origin": f"torchvision.datasets.{tv_class.__name__}",
            "raw_files": {remote.filename: {"md5": remote.md5} for remote in files},
        },
    )


def _cifar10_class(base_url: str | None, checksums: Mapping[str, str]):
    """torchvision's CIFAR10 with its URL and md5s replaced (the inner files have md5s too)."""
    from torchvision.datasets import CIFAR10

    inner = [f for f, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    _check_checksum_keys("cifar10", checksums, [CIFAR10.filename, *inner])
    return type(
        "CIFAR10",
        (CIFAR10,),
        {
            "url": join_url(base_url, CIFAR10.filename) if base_url else CIFAR10.url,
            "tgz_md5": checksums.get(CIFAR10.filename, CIFAR10.tgz_md5),
            "train_list": [[f, checksums.get(f, md5)] for f, md5 in CIFAR10.train_list],
            "test_list": [[f, checksums.get(f, md5)] for f, md5 in CIFAR10.test_list],
            "meta": {
                **CIFAR10.meta,
                "md5": checksums.get(CIFAR10.meta["filename"], CIFAR10.meta["md5"]),
            },
        },
    )


def _cifar10_folder_is_complete(tv_class, folder: Path) -> bool:
    from torchvision.datasets.utils import check_integrity

    expected = tv_class.train_list + tv_class.test_list
    expected = [*expected, [tv_class.meta["filename"], tv_class.meta["md5"]]]
    return all(check_integrity(folder / filename, md5) for filename, md5 in expected)


def _load_cifar10(
    root: Path, *, base_url: str | None, checksums: Mapping[str, str], download: bool
) -> RawDataset:
    tv_class = _cifar10_class(base_url, checksums)
    folder = root / tv_class.base_folder
    remote = RemoteFile(tv_class.filename, tv_class.tgz_md5, (tv_class.url,))
    if not _cifar10_folder_is_complete(tv_class, folder):
        root.mkdir(parents=True, exist_ok=True)
        archive = ensure_local_copy(
            remote, root, dataset="cifar10", download=download, all_files=[remote]
        )
        extract_folder_atomically(archive, root, tv_class.base_folder)
        if not _cifar10_folder_is_complete(tv_class, folder):
            raise DatasetChecksumError(
                f"{archive} matches its md5 but the files extracted to {folder} do not match "
                "theirs; delete both and prepare again"
            )
    else:
        logger.info("reusing %s", folder)

    splits = {}
    for split, train in (("train", True), ("test", False)):
        dataset = tv_class(root=str(root), train=train, download=False)
        images = np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2))  # NHWC -> NCHW
        splits[split] = (images, np.asarray(dataset.targets, dtype=np.int64))
    return RawDataset.from_splits(
        splits,
        classes=list(dataset.classes),
        provenance={
            "origin": "torchvision.datasets.CIFAR10",
            "raw_files": {remote.filename: {"md5": remote.md5}},
        },
    )


def _square_aircraft_photo(image, image_size: int) -> torch.Tensor:
    """A FGVC-Aircraft photo (PIL) as a (3, image_size, image_size) uint8 tensor: the
    copyright banner cut off, the largest centred square kept, then antialiased resizing."""
    from torchvision.transforms.v2 import functional as TF

    image = image.convert("RGB")
    width, height = image.size
    image = image.crop((0, 0, width, height - _FGVC_AIRCRAFT_BANNER_PX))
    pixels = TF.pil_to_tensor(image)
    side = min(pixels.shape[-2:])
    pixels = TF.center_crop(pixels, [side, side])
    return TF.resize(pixels, [image_size, image_size], antialias=True)


def _fetch_fgvc_aircraft(root, base_url, checksums, download) -> RemoteFile:
    """Make sure the extracted archive is in ``root``; returns what was (or would be) fetched."""
    from torchvision.datasets import FGVCAircraft

    archive_name = FGVCAircraft._URL.rsplit("/", 1)[1]
    _check_checksum_keys("fgvc_aircraft", checksums, [archive_name])
    url = join_url(base_url, archive_name) if base_url else FGVCAircraft._URL
    remote = RemoteFile(archive_name, checksums.get(archive_name, _FGVC_AIRCRAFT_MD5), (url,))
    folder_name = archive_name.removesuffix(".tar.gz")  # what torchvision looks for
    if not (root / folder_name).is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = ensure_local_copy(
            remote, root, dataset="fgvc_aircraft", download=download, all_files=[remote]
        )
        extract_folder_atomically(archive, root, folder_name)
    else:
        logger.info("reusing %s", root / folder_name)
    return remote


def _load_fgvc_aircraft(
    root: Path,
    image_size: int,
    *,
    base_url: str | None,
    checksums: Mapping[str, str],
    download: bool,
) -> RawDataset:
    from torchvision.datasets import FGVCAircraft

    remote = _fetch_fgvc_aircraft(root, base_url, checksums, download)
    splits, classes = {}, []
    for split, tv_split in (("train", "trainval"), ("test", "test")):
        dataset = FGVCAircraft(
            root=str(root),
            split=tv_split,
            annotation_level=_FGVC_AIRCRAFT_LABELS,
            transform=lambda image: _square_aircraft_photo(image, image_size),
            download=False,
        )
        classes = list(dataset.classes)
        images = np.empty((len(dataset), 3, image_size, image_size), dtype=np.uint8)
        labels = np.empty(len(dataset), dtype=np.int64)
        logger.info("decoding %d fgvc_aircraft %s photos", len(dataset), tv_split)
        with progress_bar(len(dataset), f"fgvc_aircraft {tv_split}", unit="images") as progress:
            for index in range(len(dataset)):
                image, label = dataset[index]
                images[index] = image.numpy()
                labels[index] = label
                progress.update(1)
        splits[split] = (images, labels)
    return RawDataset.from_splits(
        splits,
        classes=classes,
        provenance={
            "origin": "torchvision.datasets.FGVCAircraft",
            "splits": {"train": "trainval", "test": "test"},
            "labels": _FGVC_AIRCRAFT_LABELS,
            "crop": f"bottom {_FGVC_AIRCRAFT_BANNER_PX} px banner removed, centred square",
            "raw_files": {remote.filename: {"md5": remote.md5}},
        },
    )
