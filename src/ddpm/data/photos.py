"""The images of the analyses that destroy an image step by step: the colour photos
scikit-learn ships, and one of its 8 x 8 digits."""

from __future__ import annotations

import numpy as np

from .. import DataError

__all__ = ["DIGIT", "PHOTOS", "load_digit", "load_photo"]

PHOTOS = ("china.jpg", "flower.jpg")

DIGIT = "digit"
"""The name of :func:`load_digit`'s image among the photos."""


def load_photo(name: str = "china.jpg") -> np.ndarray:
    """A colour photo shipped with scikit-learn, as uint8 (H, W, 3) (427 x 640 for both)."""
    if name not in PHOTOS:
        raise DataError(f"Unknown photo {name!r}; scikit-learn ships {PHOTOS}")
    from sklearn.datasets import load_sample_image

    return np.asarray(load_sample_image(name), dtype=np.uint8)


def load_digit() -> np.ndarray:
    """One of scikit-learn's 1,797 8 x 8 digits as the ``digits`` dataset stores it (0..16 scaled
    to 0..255), uint8 (8, 8): the one of median pixel variance (ties: the first), a typical digit
    rather than a chosen one."""
    from sklearn.datasets import load_digits

    images = np.rint(load_digits().images * (255.0 / 16.0)).astype(np.uint8)
    variances = (images.astype(np.float64) / 127.5 - 1.0).reshape(len(images), -1).var(axis=1)
    order = np.argsort(variances, kind="stable")
    return images[order[(len(images) - 1) // 2]]
