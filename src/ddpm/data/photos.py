"""The colour photos scikit-learn ships, for the analyses that destroy an image step by step."""

from __future__ import annotations

import numpy as np

from .. import DataError

__all__ = ["PHOTOS", "load_photo"]

PHOTOS = ("china.jpg", "flower.jpg")


def load_photo(name: str = "china.jpg") -> np.ndarray:
    """A colour photo shipped with scikit-learn, as uint8 (H, W, 3) (427 x 640 for both)."""
    if name not in PHOTOS:
        raise DataError(f"Unknown photo {name!r}; scikit-learn ships {PHOTOS}")
    from sklearn.datasets import load_sample_image

    return np.asarray(load_sample_image(name), dtype=np.uint8)
