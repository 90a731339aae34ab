"""Scoring as the study does it: every enabled extractor, the same reference set, one record.

The real floor: no model can beat real images of its own dataset, so their metrics against
the test set, at the same sample size, are the floor a run's metrics are read against; the
real images are drawn so that none of them is also in the test set (:func:`draw_real_set`).

The reference set is the dataset's test split. :func:`score_samples` scores a run's samples;
:func:`score_real_floor` draws as many real images from outside the test set and scores them
with :func:`score_samples`. Next to each metric the record holds its within-run bootstrap
spread (resampling the scored images). The classifier extractor always runs; the
Inception extractor runs when its weights are available, and is otherwise recorded as not
computed, with the reason, so that a table or a figure can say why a column is empty.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .. import ConfigError
from ..files import atomic_write
from .common import as_uint8_images, scoring_view
from .reference_cache import reference_cache_name
from .scoring import compute_metrics, metric_columns
from .spread import bootstrap_metrics, cached_reference_features

__all__ = [
    "DEFAULT_BOOTSTRAP_RESAMPLES",
    "draw_real_set",
    "read_inception_status",
    "score_real_floor",
    "score_samples",
    "write_inception_status",
]

DEFAULT_BOOTSTRAP_RESAMPLES = 100
"""Bootstrap replicates of the within-run spread when the scoring config does not say."""

logger = logging.getLogger(__name__)

_METRIC_OPTIONS = ("kid_subset_size", "kid_subsets", "isc_splits", "prc_neighborhood")


def write_inception_status(
    path: str | Path, mode: str, weights_path: Path | None, reason: str
) -> Path:
    """Record whether the Inception-v3 metrics can be computed, and why not if they cannot."""
    status = {
        "mode": mode,
        "weights_path": str(weights_path) if weights_path else None,
        "reason": reason,
    }
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(status, indent=2) + "\n"))


def read_inception_status(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def _extractors(classifier_path, inception_status: Mapping) -> dict[str, str | None]:
    """Extractor name -> weights file; None means not computed (the status says why)."""
    return {"classifier": str(classifier_path), "inception": inception_status.get("weights_path")}


def score_samples(
    samples: torch.Tensor,
    test_images: torch.Tensor,
    *,
    dataset: str,
    classifier_path: str | Path,
    inception_status: Mapping,
    cache_dir: str | Path,
    options: Mapping,
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """Metrics of a run's ``samples`` (uint8 N x C x H x W) against the test set, for every
    extractor, with the within-run bootstrap spread of FID, KID and IS.

    Args:
        samples, test_images: uint8 image batches of one dataset at one size.
        dataset: the dataset's name, part of the reference cache's key.
        classifier_path: the domain classifier's weights (:func:`train_classifier`).
        inception_status: what :func:`write_inception_status` recorded; without weights the
            Inception columns are NaN and ``inception_status`` says why.
        cache_dir: the reference-feature cache, shared by every run of the dataset.
        options: the config's ``scoring`` section: torch-fidelity's KID/IS/PRC options,
            ``bootstrap_resamples`` (default 100; 0 skips the spread) and ``image_size`` (score
            at this side, both sets averaged over k x k blocks first, see
            :func:`~ddpm.evaluation.common.scoring_view`; absent or None: at their own size).
        seed: seeds the bootstrap.
        device: where the extractors run (``"auto"``, ``"cpu"``, ``"cuda"``, ...).
    """
    score_size = options.get("image_size")
    if score_size is not None:
        samples, test_images = (
            scoring_view(samples, score_size),
            scoring_view(test_images, score_size),
        )
    metric_options = {
        **_metric_defaults(),
        **{k: options[k] for k in _METRIC_OPTIONS if k in options},
    }
    resamples = int(options.get("bootstrap_resamples", DEFAULT_BOOTSTRAP_RESAMPLES))
    results: dict = {"n_generated": len(samples), "n_reference": len(test_images)}
    for extractor, weights in _extractors(classifier_path, inception_status).items():
        if weights is None:
            results.update(dict.fromkeys(metric_columns(extractor), math.nan))
            results[f"{extractor}_status"] = f"not computed: {inception_status.get('reason', '')}"
            continue
        common = {
            "extractor": extractor,
            "weights_path": weights,
            "device": device,
            **metric_options,
        }
        cache_key = reference_cache_name(
            dataset, "test", test_images.shape[-1], extractor, len(test_images)
        )
        logger.info("scoring %d images with the %s extractor", len(samples), extractor)
        metrics = compute_metrics(
            samples, test_images, reference_cache_key=cache_key, cache_dir=cache_dir, **common
        )
        metrics.pop("n_generated", None)
        metrics.pop("n_reference", None)
        results.update(metrics)
        if resamples:
            results.update(
                _spread(samples, test_images, common, cache_dir, cache_key, resamples, seed)
            )
        results[f"{extractor}_status"] = "computed"
    return results


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


def score_real_floor(
    real_pool: torch.Tensor,
    test_images: torch.Tensor,
    n: int,
    *,
    dataset: str,
    classifier_path: str | Path,
    inception_status: Mapping,
    cache_dir: str | Path,
    options: Mapping,
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """The floor: ``n`` real images drawn from ``real_pool`` (none of them in the test set) scored
    exactly as a run's ``n`` samples are, bootstrap spread included: what a perfect model would
    score at this sample size. ``seed`` seeds the draw and the bootstrap; the other arguments
    are those of :func:`score_samples`."""
    real = draw_real_set(real_pool, test_images, n, seed=seed)
    return score_samples(
        real,
        test_images,
        dataset=dataset,
        classifier_path=classifier_path,
        inception_status=inception_status,
        cache_dir=cache_dir,
        options=options,
        seed=seed,
        device=device,
    )


def _metric_defaults() -> dict:
    """The metric options' defaults: :func:`compute_metrics`'s own."""
    parameters = inspect.signature(compute_metrics).parameters
    return {name: parameters[name].default for name in _METRIC_OPTIONS}


def _spread(images, test_images, common: Mapping, cache_dir, cache_key, resamples, seed) -> dict:
    """The bootstrap spread of one extractor's metrics, on its cached reference features."""
    reference = cached_reference_features(
        test_images,
        extractor=common["extractor"],
        weights_path=common["weights_path"],
        cache_dir=cache_dir,
        cache_key=cache_key,
        device=common["device"],
    )
    return bootstrap_metrics(
        images,
        test_images,
        resamples=resamples,
        seed=seed,
        reference_features=reference,
        **{k: v for k, v in common.items() if k != "prc_neighborhood"},
    )
