"""A dataset as a source delivers it: both splits before resizing, with where they came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RawDataset"]


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
