"""The real floor: real images scored exactly as samples are, at the same sample size.

No model can beat real images of its own dataset, so their metrics against the test set are
the floor a run's metrics are read against. The real images are drawn so that none of them is
also in the test set.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .. import ConfigError
from .common import as_uint8_images
from .scoring import compute_metrics

__all__ = ["draw_real_set", "real_floor"]

logger = logging.getLogger(__name__)


def draw_real_set(real_pool, reference, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` real images drawn from ``real_pool`` without any image that is also in ``reference``
    (the two sets are disjoint), as a uint8 tensor; ``seed`` seeds the draw."""
    real_pool = as_uint8_images(real_pool, "real pool")
    reference = as_uint8_images(reference, "reference")
    if real_pool.shape[1:] != reference.shape[1:]:
        raise ConfigError(
            f"real pool images are {tuple(real_pool.shape[1:])} (C, H, W) but reference images are "
            f"{tuple(reference.shape[1:])}; draw both from the same dataset and resolution"
        )
    in_reference = {image.tobytes() for image in reference.reshape(len(reference), -1).numpy()}
    disjoint = np.array(
        [
            image.tobytes() not in in_reference
            for image in real_pool.reshape(len(real_pool), -1).numpy()
        ],
        dtype=bool,
    )
    candidates = torch.from_numpy(np.flatnonzero(disjoint))
    if len(candidates) < len(real_pool):
        logger.info(
            "real floor: %d pool images also occur in the reference set and are left out",
            len(real_pool) - len(candidates),
        )
    if n > len(candidates):
        raise ConfigError(
            f"the real pool has {len(candidates)} images not in the reference set, fewer than the "
            f"{n} requested; lower n or pass a larger pool (e.g. the training set)"
        )
    draw = candidates[
        torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))[:n]
    ]
    return real_pool[draw]


def real_floor(real_pool, reference, n: int, *, seed: int = 0, **metric_options) -> dict:
    """The metrics of ``n`` real images against the reference set: what a perfect model would
    score at this sample size.

    Args:
        real_pool: real uint8 images to draw from, e.g. the training set; images that also occur
            in ``reference`` are left out, so the two sets are disjoint (:func:`draw_real_set`).
        reference: the reference images (e.g. the test set), as in :func:`compute_metrics`.
        n: how many images to draw; use the size of the generated sets.
        seed: seeds the draw.
        **metric_options: passed to :func:`compute_metrics` (``extractor``, ``weights_path``,
            ``reference_cache_key``, ``cache_dir``, ...). With the same reference cache key as
            the scoring calls, this call fills the reference cache they then reuse.

    Returns:
        The same keys as :func:`compute_metrics`.
    """
    real = draw_real_set(real_pool, reference, n, seed=seed)
    return compute_metrics(real, as_uint8_images(reference, "reference"), **metric_options)
