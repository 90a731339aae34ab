"""The within-run spread of IS, FID and KID: how much of a run's number comes from the finite
set of generated images, as opposed to the trained model.

The features of each set are extracted once, in the layers torch-fidelity itself uses for each
metric; :func:`bootstrap_sample_metrics` then resamples them and recomputes every metric
with torch-fidelity's feature -> metric functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch_fidelity
import torch_fidelity.utils
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from .. import ConfigError
from ..files import atomic_write
from ..runtime import resolve_device
from ..stats import CONFIDENCE
from .classifier import register_classifier_extractor
from .common import as_uint8_images
from .inception import INCEPTION_EXTRACTOR_NAME
from .reference_cache import file_sha256
from .scoring import EXTRACTORS, _ImageBatch

__all__ = [
    "BOOTSTRAP_METRICS",
    "bootstrap_metrics",
    "bootstrap_sample_metrics",
    "cached_reference_features",
    "extract_metric_features",
]

BOOTSTRAP_METRICS = ("fid", "kid_mean", "is_mean")
"""The metric suffixes whose within-run (sample) spread is bootstrapped."""


def extract_metric_features(
    images, *, extractor: str, weights_path: str | Path, batch_size: int = 128, device="auto"
) -> dict[str, torch.Tensor]:
    """The features torch-fidelity computes each metric from: ``{"fid", "kid", "isc"}`` -> N x D
    (the extractor's default layer for that metric), extracted in one pass over ``images``."""
    if extractor not in EXTRACTORS:
        raise ConfigError(f"extractor must be one of {EXTRACTORS}, got {extractor!r}")
    images = as_uint8_images(images, "images")
    name = (
        register_classifier_extractor() if extractor == "classifier" else INCEPTION_EXTRACTOR_NAME
    )
    cuda = resolve_device(device).type == "cuda"
    layers = {
        metric: torch_fidelity.utils.resolve_feature_layer_for_metric(
            metric, feature_extractor=name
        )
        for metric in ("fid", "kid", "isc")
    }
    model = torch_fidelity.utils.create_feature_extractor(
        name,
        sorted(set(layers.values())),
        cuda=cuda,
        feature_extractor_weights_path=str(weights_path),
        verbose=False,
    )
    features = torch_fidelity.utils.get_featuresdict_from_dataset(
        _ImageBatch(images, to_rgb=extractor == "inception", label=f"{extractor}, features"),
        model,
        batch_size,
        cuda,
        True,
        False,
    )
    return {metric: features[layer] for metric, layer in layers.items()}


def bootstrap_metrics(
    generated,
    reference,
    *,
    extractor: str,
    weights_path: str | Path,
    resamples: int,
    seed: int,
    kid_subset_size: int,
    kid_subsets: int,
    isc_splits: int,
    reference_features: Mapping | None = None,
    device: str = "auto",
) -> dict:
    """The within-run (finite-sample) spread of FID, KID and IS of ``generated``: features are
    extracted once, the generated set is resampled with replacement ``resamples`` times and each
    metric recomputed by torch-fidelity (:func:`bootstrap_sample_metrics`).

    Returns ``{extractor}_{fid|kid_mean|is_mean}_boot_{sd|lo|hi}`` and ``bootstrap_resamples``.
    ``reference_features`` (from :func:`extract_metric_features`) skips extracting the reference.
    The metric options are those of :func:`ddpm.evaluation.scoring.compute_metrics` (whose
    defaults they are); a ``kid_subset_size`` above the number of images raises, as there.
    """
    features = {"extractor": extractor, "weights_path": weights_path, "device": device}
    gen = extract_metric_features(generated, **features)
    if reference_features is None:
        reference_features = extract_metric_features(reference, **features)
    spread = bootstrap_sample_metrics(
        gen,
        dict(reference_features),
        resamples=resamples,
        seed=seed,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        isc_splits=isc_splits,
    )
    return {
        (key if key == "bootstrap_resamples" else f"{extractor}_{key}"): value
        for key, value in spread.items()
    }


def cached_reference_features(
    reference,
    *,
    extractor: str,
    weights_path: str | Path,
    cache_dir,
    cache_key: str,
    device: str = "auto",
) -> dict[str, torch.Tensor]:
    """The reference set's features, from ``cache_dir`` when there, else extracted and saved.

    The floor rule scores first and fills the cache; every run's scoring then only reads it, so
    Inception-v3 (slow on a CPU) sees the test set once per dataset, not once per run.
    """
    digest = file_sha256(weights_path)[:12]
    path = Path(cache_dir) / f"{cache_key}-w{digest}-features.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    features = extract_metric_features(
        reference, extractor=extractor, weights_path=weights_path, device=device
    )
    atomic_write(path, lambda tmp: torch.save(features, tmp))
    return features


def _metrics_of(generated: dict, reference_fid_stats: dict, reference_features, options) -> dict:
    """FID, KID and IS of one (re)sampled generated set, by torch-fidelity's functions."""
    fid = fid_statistics_to_metric(
        fid_features_to_statistics(generated["fid"]), reference_fid_stats, verbose=False
    )
    kid = kid_features_to_metric(
        generated["kid"],
        reference_features,
        kid_subsets=options["kid_subsets"],
        kid_subset_size=options["kid_subset_size"],
        rng_seed=options["rng_seed"],
        verbose=False,
    )
    isc = isc_features_to_metric(generated["isc"], splits=options["isc_splits"])
    return {
        "fid": fid[torch_fidelity.KEY_METRIC_FID],
        "kid_mean": kid[torch_fidelity.KEY_METRIC_KID_MEAN],
        "is_mean": isc[torch_fidelity.KEY_METRIC_ISC_MEAN],
    }


def bootstrap_sample_metrics(
    generated: dict[str, torch.Tensor],
    reference: dict[str, torch.Tensor],
    *,
    resamples: int,
    seed: int,
    kid_subsets: int,
    kid_subset_size: int,
    isc_splits: int,
) -> dict:
    """Spread of FID, KID and IS that comes from the finite generated set alone.

    Args:
        generated, reference: features per metric, ``{"fid": N x D, "kid": N x D, "isc": N x K}``
            (the layers torch-fidelity uses for that metric; IS needs only ``generated``). The
            reference set is held fixed: it is the same for every run.
        resamples: bootstrap replicates; each draws len(generated) rows with replacement.
        seed: seeds the draws.
        kid_subsets, kid_subset_size, isc_splits: as in the metric itself.

    Returns:
        ``{metric}_boot_sd``, ``_boot_lo`` and ``_boot_hi`` (95 % percentile interval) for each of
        :data:`BOOTSTRAP_METRICS`, and ``bootstrap_resamples``.
    """
    if resamples < 2:
        raise ConfigError(f"resamples must be at least 2 for a spread, got {resamples}")
    n = len(generated["fid"])
    if kid_subset_size > n:
        raise ConfigError(
            f"kid_subset_size={kid_subset_size} is larger than the {n} generated images; lower it"
        )
    reference_fid_stats = fid_features_to_statistics(reference["fid"])
    options = {
        "kid_subsets": kid_subsets,
        "kid_subset_size": kid_subset_size,
        "isc_splits": isc_splits,
    }
    rng = np.random.default_rng(seed)
    replicates = {name: [] for name in BOOTSTRAP_METRICS}
    for i in range(resamples):
        draw = torch.from_numpy(rng.integers(0, n, size=n))
        resampled = {key: value[draw] for key, value in generated.items()}
        values = _metrics_of(
            resampled, reference_fid_stats, reference["kid"], {**options, "rng_seed": seed + i}
        )
        for name in BOOTSTRAP_METRICS:
            replicates[name].append(values[name])
    result: dict = {"bootstrap_resamples": resamples}
    for name, values in replicates.items():
        values = np.asarray(values, dtype=float)
        lo, hi = np.quantile(values, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        result[f"{name}_boot_sd"] = float(values.std(ddof=1))
        result[f"{name}_boot_lo"] = float(lo)
        result[f"{name}_boot_hi"] = float(hi)
    return result
