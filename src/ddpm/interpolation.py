"""Interpolation through x_t in the best cell (Ho et al. 2020, sec. 4.3 and fig. 9).

Two real test images are noised to x_t with the same noise draw for every mixing weight, mixed as
(1 - lambda) x_t^a + lambda x_t^b and denoised by the reverse process (Algorithm 2 from t). A
small t keeps the two sources and blends their pixels; a large t keeps coarse attributes only and
gives the model room to make a plausible image of the mixture. The same seed gives the same
figure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import ConfigError
from .diffusion import from_model_range, to_model_range
from .files import atomic_save_npz

__all__ = ["best_cell_interpolation", "interpolation_series", "load_interpolation", "pick_pair"]

logger = logging.getLogger(__name__)

LAMBDAS = tuple(i / 8 for i in range(9))
"""The mixing weights of Ho et al.'s figure 9: 0, 1/8, ..., 1."""


def pick_pair(labels: np.ndarray) -> tuple[int, int]:
    """The first test image and the first after it with another label (two different digits)."""
    labels = np.asarray(labels)
    others = np.flatnonzero(labels != labels[0])
    return 0, int(others[0]) if len(others) else min(1, len(labels) - 1)


def interpolation_series(
    model_path: str | os.PathLike,
    pair_uint8: torch.Tensor,
    fractions: Sequence[float],
    *,
    lambdas: Sequence[float] = LAMBDAS,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
) -> dict[str, np.ndarray]:
    """Interpolate the two images ``pair_uint8`` (uint8, 2 x C x H x W) through x_t at
    t = round(fraction * T) for each of ``fractions`` (each t with its own generator seeded with
    ``seed``, so a row does not depend on the others).

    Returns ``{"t": (K,), "lambdas": (L,), "images": uint8 (K, L, C, H, W),
    "sources": uint8 (2, C, H, W)}``.
    """
    from .sampling import _load_noise_predictor

    if len(pair_uint8) != 2 or pair_uint8.dtype != torch.uint8:
        raise ConfigError("pair_uint8 must be two uint8 images (2, C, H, W)")
    bad = [f for f in fractions if not 0 < f <= 1]
    if not fractions or bad:
        raise ConfigError(f"fractions of T must be numbers in (0, 1], got {list(fractions)}")
    predictor, diffusion, _, device, _, _ = _load_noise_predictor(
        model_path, device, precision, len(lambdas)
    )
    steps = sorted({max(1, round(f * diffusion.T)) for f in fractions})
    x0 = to_model_range(pair_uint8).to(device)
    rows = []
    for t in steps:
        logger.info(
            "interpolating through x_t at t = %d of %d, %d weights", t, diffusion.T, len(lambdas)
        )
        with torch.inference_mode():
            mixed = diffusion.interpolate(
                predictor, x0[0], x0[1], t, lambdas, generator=torch.Generator().manual_seed(seed)
            )
        rows.append(from_model_range(mixed).cpu().numpy())
    return {
        "t": np.asarray(steps, dtype=np.int64),
        "lambdas": np.asarray(lambdas, dtype=np.float64),
        "images": np.stack(rows),
        "sources": pair_uint8.cpu().numpy(),
    }


def best_cell_interpolation(
    metrics: str | os.PathLike,
    floor: str | os.PathLike,
    model_paths: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    out_path: str | os.PathLike,
    fractions: Sequence[float] = (0.25, 0.5, 0.75),
    *,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
) -> Path:
    """Interpolate two test images of ``data`` with the best cell's median seed
    (:func:`ddpm.verdicts.best_cell` on the metrics table and floor) and write
    :func:`interpolation_series` with the cell's schedule, T and seed to ``out_path`` (.npz)."""
    from .data.store import load_split
    from .evaluation.scoring import read_metrics
    from .results import run_of
    from .verdicts import best_cell

    cell = best_cell(pd.read_csv(metrics), read_metrics(floor))
    wanted = (cell["schedule"], cell["T"], cell["median_seed"])
    chosen = [
        p for p in model_paths if tuple(run_of(p)[k] for k in ("schedule", "T", "seed")) == wanted
    ]
    if not chosen:
        raise ConfigError(f"no model of the best cell {wanted} among the {len(model_paths)} given")
    images, labels = load_split(data, "test")
    first, second = pick_pair(labels.numpy())
    logger.info("best cell %s T = %d, seed %d: test images %d and %d", *wanted, first, second)
    series = interpolation_series(
        chosen[0],
        images[[first, second]],
        fractions,
        seed=seed,
        device=device,
        precision=precision,
    )
    atomic_save_npz(
        Path(out_path),
        **series,
        cell=np.asarray([cell["schedule"], str(cell["T"]), str(cell["median_seed"])]),
    )
    return Path(out_path)


def load_interpolation(path: str | os.PathLike) -> Mapping[str, np.ndarray]:
    """What :func:`best_cell_interpolation` wrote."""
    with np.load(path) as content:
        return {key: content[key] for key in content.files}
