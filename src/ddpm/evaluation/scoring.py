"""IS, FID, KID and precision/recall of generated images, all computed by torch-fidelity.

This module only prepares the inputs (uint8 image batches wrapped as datasets, the feature
extractor, the weights file, the reference cache), checks them before any long work, and renames
torch-fidelity's results to flat keys prefixed by the extractor: ``classifier_fid``,
``inception_is_mean``, ...
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch_fidelity
from torch.utils.data import Dataset

from .. import ConfigError
from ..files import atomic_write
from ..runtime import resolve_device
from .classifier import read_classifier_config, register_classifier_extractor
from .common import as_uint8_images
from .inception import INCEPTION_EXTRACTOR_NAME
from .reference_cache import check_cache_key, check_reference_cache, file_sha256

__all__ = [
    "EXTRACTORS",
    "METRIC_SUFFIXES",
    "compute_metrics",
    "metric_columns",
    "read_metrics",
    "write_metrics",
]

logger = logging.getLogger(__name__)

EXTRACTORS = ("classifier", "inception")
"""Feature extractors by the prefix of their metric keys."""

# torch-fidelity's result keys -> the suffix of ours.
_RENAME = {
    torch_fidelity.KEY_METRIC_ISC_MEAN: "is_mean",
    torch_fidelity.KEY_METRIC_ISC_STD: "is_std",
    torch_fidelity.KEY_METRIC_FID: "fid",
    torch_fidelity.KEY_METRIC_KID_MEAN: "kid_mean",
    torch_fidelity.KEY_METRIC_KID_STD: "kid_std",
    torch_fidelity.KEY_METRIC_PRECISION: "precision",
    torch_fidelity.KEY_METRIC_RECALL: "recall",
    torch_fidelity.KEY_METRIC_F_SCORE: "f_score",
}
METRIC_SUFFIXES = tuple(_RENAME.values())


def metric_columns(extractor: str) -> list[str]:
    """The metric keys :func:`compute_metrics` returns for ``extractor``."""
    return [f"{extractor}_{suffix}" for suffix in METRIC_SUFFIXES]


class _ImageBatch(Dataset):
    """uint8 images as a torch-fidelity input, one C x H x W tensor per item.

    ``to_rgb`` repeats a single channel three times (Inception takes RGB only). Items are read in
    order by a single-process loader, so counting them gives progress lines for the log.
    """

    def __init__(
        self, images: torch.Tensor, *, to_rgb: bool, label: str, log_every_s: float = 30.0
    ):
        self.images = images
        self.to_rgb = to_rgb and images.shape[1] == 1
        self.label = label
        self.log_every_s = log_every_s
        self._started = self._last_log = None
        self._count = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        now = time.monotonic()
        if self._started is None:
            self._started = self._last_log = now
        self._count += 1
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            logger.info(
                "%s: %d of %d images through the feature extractor (%.0f s)",
                self.label,
                self._count,
                len(self),
                now - self._started,
            )
        image = self.images[index]
        return image.expand(3, -1, -1) if self.to_rgb else image


def _check_images(
    generated: torch.Tensor, reference: torch.Tensor, *, extractor: str, weights_path: Path
) -> None:
    """The two sets must match each other and what the extractor was trained on."""
    channels = generated.shape[1]
    if channels != reference.shape[1]:
        raise ConfigError(
            f"generated images have {channels} channel(s) but reference images have "
            f"{reference.shape[1]}; score against the same dataset in the same colour mode"
        )
    if generated.shape[2:] != reference.shape[2:]:
        raise ConfigError(
            f"generated images are {generated.shape[2]}x{generated.shape[3]} but reference images "
            f"are {reference.shape[2]}x{reference.shape[3]}; use the reference set at the "
            "resolution the model was trained on"
        )
    if extractor == "inception" and channels not in (1, 3):
        raise ConfigError(
            f"Inception-v3 takes grayscale (1 channel) or RGB (3 channels) images, got {channels}"
        )
    if extractor == "classifier":
        config = read_classifier_config(weights_path)
        size = generated.shape[2:]
        if (config["in_channels"], config["image_size"], config["image_size"]) != (channels, *size):
            raise ConfigError(
                f"the classifier {weights_path} was trained on {config['in_channels']}-channel "
                f"{config['image_size']}x{config['image_size']} images, but these are "
                f"{channels}-channel {size[0]}x{size[1]}; pass the classifier trained on this dataset"
            )


def _check_metric_options(
    n_gen: int,
    n_ref: int,
    *,
    kid_subset_size: int,
    kid_subsets: int,
    isc_splits: int,
    prc_neighborhood: int,
) -> None:
    """Each metric's option must fit the sizes of the two sets."""
    for name, n in (("generated", n_gen), ("reference", n_ref)):
        if n < 2:
            raise ConfigError(
                f"the {name} set has {n} image(s); FID needs at least 2 per set (a covariance)"
            )
    for name, value in (
        ("kid_subset_size", kid_subset_size),
        ("kid_subsets", kid_subsets),
        ("isc_splits", isc_splits),
        ("prc_neighborhood", prc_neighborhood),
    ):
        if int(value) != value or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    sets = (("generated", n_gen), ("reference", n_ref))
    smaller = [f"{name} set ({n} images)" for name, n in sets if n < kid_subset_size]
    if smaller:
        raise ConfigError(
            f"kid_subset_size={kid_subset_size} is larger than the {' and the '.join(smaller)}; "
            f"lower kid_subset_size to at most {min(n_gen, n_ref)} or use more samples"
        )
    if isc_splits > n_gen:
        raise ConfigError(
            f"isc_splits={isc_splits} is more than the {n_gen} generated images; lower isc_splits "
            "(each split needs several images)"
        )
    smaller = [f"{name} set ({n} images)" for name, n in sets if n <= prc_neighborhood]
    if smaller:
        raise ConfigError(
            f"prc_neighborhood={prc_neighborhood} needs more images than that in each set, but the "
            f"{' and the '.join(smaller)} is not; lower prc_neighborhood to at most "
            f"{min(n_gen, n_ref) - 1}"
        )


def _checked_weights_path(extractor: str, weights_path: str | Path | None) -> Path:
    if extractor not in EXTRACTORS:
        raise ConfigError(f"extractor must be one of {EXTRACTORS}, got {extractor!r}")
    if weights_path is None:
        how = (
            "train it with train_classifier"
            if extractor == "classifier"
            else "get it with resolve_inception_weights"
        )
        raise ConfigError(f"extractor {extractor!r} needs weights_path; {how}")
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise ConfigError(f"{extractor} weights file {weights_path} does not exist")
    return weights_path


def _check_cache_arguments(reference_cache_key: str | None, cache_dir) -> None:
    if reference_cache_key is not None:
        check_cache_key(reference_cache_key)
        if cache_dir is None:
            raise ConfigError("reference_cache_key needs cache_dir, the folder of the cache")


def _fidelity_device(device: str) -> torch.device:
    """The device as torch-fidelity takes it: a CUDA device becomes the current one."""
    torch_device = resolve_device(device)
    if torch_device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)  # torch-fidelity runs on the current CUDA device
    return torch_device


def _reference_cache_entry(reference_cache_key: str | None, cache_dir, weights_path: Path):
    """The cache's name for these reference features (None: no cache), its files checked."""
    if reference_cache_key is None:
        return None
    cache_name = f"{reference_cache_key}-w{file_sha256(weights_path)[:12]}"
    check_reference_cache(cache_dir, cache_name)
    return cache_name


def compute_metrics(
    generated,
    reference,
    *,
    extractor: str,
    weights_path: str | Path | None = None,
    reference_cache_key: str | None = None,
    cache_dir: str | Path | None = None,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    isc_splits: int = 10,
    prc_neighborhood: int = 3,
    batch_size: int = 128,
    device: str = "auto",
) -> dict:
    """IS of ``generated``; FID, KID and precision/recall of ``generated`` against ``reference``.

    Args:
        generated, reference: uint8 images N x C x H x W (tensors or numpy arrays) with the same
            channel count and size. Grayscale is repeated to RGB for Inception; the classifier sees
            the images as they are.
        extractor: ``"classifier"`` (weights from :func:`train_classifier`) or ``"inception"``
            (torch-fidelity's ``inception-v3-compat``; weights from
            :func:`resolve_inception_weights`). The metric keys are prefixed with it.
        weights_path: the extractor's weights file (required; nothing is downloaded here).
        reference_cache_key: name under which the reference features and FID statistics are
            cached (:func:`reference_cache_name`); a digest of the weights file is appended, so new
            weights never meet stale features. ``None`` caches nothing.
        cache_dir: folder of the cache (required with ``reference_cache_key``).
        kid_subset_size, kid_subsets: KID is averaged over ``kid_subsets`` random subsets of
            ``kid_subset_size`` images drawn from each set.
        isc_splits: the generated set is split this many times for the IS mean and std.
        prc_neighborhood: k of the k-nearest-neighbour balls of precision/recall.
        batch_size: images per forward pass of the extractor.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (a GPU no other ddpm process holds) or
            ``"cuda:N"``; it becomes torch-fidelity's current CUDA device.

    Returns:
        ``{extractor}_is_mean``, ``_is_std``, ``_fid``, ``_kid_mean``, ``_kid_std``,
        ``_precision``, ``_recall``, ``_f_score`` as floats, and ``n_generated``, ``n_reference``.
    """
    metric_options = {
        "kid_subset_size": kid_subset_size,
        "kid_subsets": kid_subsets,
        "isc_splits": isc_splits,
        "prc_neighborhood": prc_neighborhood,
    }
    weights_path = _checked_weights_path(extractor, weights_path)
    generated = as_uint8_images(generated, "generated")
    reference = as_uint8_images(reference, "reference")
    _check_images(generated, reference, extractor=extractor, weights_path=weights_path)
    _check_metric_options(len(generated), len(reference), **metric_options)
    _check_cache_arguments(reference_cache_key, cache_dir)
    cuda = _fidelity_device(device).type == "cuda"
    cache_name = _reference_cache_entry(reference_cache_key, cache_dir, weights_path)
    numbers = {name: int(value) for name, value in metric_options.items()}
    metrics = _fidelity_metrics(
        generated,
        reference,
        extractor=extractor,
        weights_path=weights_path,
        cache=(cache_name, cache_dir),
        cuda=cuda,
        numbers={**numbers, "batch_size": int(batch_size)},
    )
    return {**metrics, "n_generated": len(generated), "n_reference": len(reference)}


def _fidelity_metrics(
    generated: torch.Tensor,
    reference: torch.Tensor,
    *,
    extractor: str,
    weights_path: Path,
    cache: tuple[str | None, str | Path | None],
    cuda: bool,
    numbers: Mapping[str, int],
) -> dict:
    """torch-fidelity's metrics of the checked inputs, under our flat, prefixed keys.

    ``cache`` is (the reference cache's entry name or None, its folder).
    """
    if extractor == "classifier":
        fidelity_name = register_classifier_extractor()
    else:
        fidelity_name = INCEPTION_EXTRACTOR_NAME
    cache_name, cache_dir = cache
    to_rgb = extractor == "inception"
    logger.info(
        "scoring %d generated against %d reference images with %s features (%s)%s",
        len(generated),
        len(reference),
        extractor,
        weights_path,
        f", reference cache {cache_name}" if cache_name else "",
    )
    started = time.perf_counter()
    results = torch_fidelity.calculate_metrics(
        input1=_ImageBatch(generated, to_rgb=to_rgb, label=f"{extractor}, generated"),
        input2=_ImageBatch(reference, to_rgb=to_rgb, label=f"{extractor}, reference"),
        input2_cache_name=cache_name,
        cache=cache_name is not None,
        cache_root=str(cache_dir) if cache_name else None,
        feature_extractor=fidelity_name,
        feature_extractor_weights_path=str(weights_path),
        isc=True,
        fid=True,
        kid=True,
        prc=True,
        **numbers,
        cuda=cuda,
        # The images are already in memory: loader worker processes would only add start-up time.
        # (This also makes precision/recall use torch-fidelity's blockwise, same-result path.)
        save_cpu_ram=True,
        verbose=False,  # its tqdm bars garble log files; progress is logged by _ImageBatch
    )
    metrics = {
        f"{extractor}_{_RENAME[key]}": float(value)
        for key, value in results.items()
        if key in _RENAME
    }
    logger.info(
        "%s: IS %.3f ± %.3f, FID %.3f, KID %.4f ± %.4f, precision %.3f, recall %.3f (%.1f s)",
        extractor,
        *(
            metrics[f"{extractor}_{s}"]
            for s in ("is_mean", "is_std", "fid", "kid_mean", "kid_std", "precision", "recall")
        ),
        time.perf_counter() - started,
    )
    return metrics


def _json_value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; null reads back as NaN
    return value


def write_metrics(path: str | Path, metrics: Mapping, **metadata) -> Path:
    """Write a run's ``metrics.json`` atomically: one flat object of the metrics (NaN as null) and
    any metadata (e.g. ``classifier_weights_sha256="..."``, ``inception_status="..."``)."""
    clash = set(metrics) & set(metadata)
    if clash:
        raise ConfigError(f"metadata keys {sorted(clash)} are also metric keys; rename them")
    payload = {key: _json_value(value) for key, value in {**metrics, **metadata}.items()}
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_metrics(path: str | Path) -> dict:
    """Read a ``metrics.json`` written by :func:`write_metrics`; nulls come back as NaN."""
    payload = json.loads(Path(path).read_text())
    if not isinstance(payload, dict):
        raise ConfigError(f"{path} does not hold a JSON object of metrics")
    return {key: math.nan if value is None else value for key, value in payload.items()}
