"""Progressive coding (Ho et al. 2020, sec. 4.3 and fig. 5): the rate the reverse process spends
and the distortion it removes, step by step.

A sender who codes a test image with the model sends x_T, then x_{T-1}, ..., x_1, then x_0; each
step costs the term of the variational bound that belongs to it (bits per dimension). After x_t
has arrived the receiver's best guess of the image is the model's x_0 estimate from x_t. So at
every t:

- **rate**: the bits sent until x_t has arrived, L_T + L_{T-1} + ... + L_t (cumulative from T down
  to t); with the decoder's L_0 it is the whole bound;
- **distortion**: the root mean squared error between x_0 and the model's x_0 estimate from x_t,
  on the [0, 255] scale (as Ho et al.), over every pixel of the test images;
- at t = 0 (the row ``t = 0``): the discrete decoder p(x_0 | x_1): the whole bound, and the
  distortion of its most likely 8-bit image.

:func:`rate_distortion` computes the table of one model (T model evaluations per image, one pass
of :meth:`ddpm.diffusion.GaussianDiffusion.variational_bound`); :func:`coding_shares` reduces each
run's table to the numbers that :func:`ddpm.verdicts.coding_verdicts` judges Ho et al.'s claims by.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import ConfigError

__all__ = [
    "FIRST_FRACTION",
    "SHARE_COLUMNS",
    "coding_shares",
    "coding_table",
    "rate_distortion",
    "read_coding_tables",
    "write_rate_distortion",
]

logger = logging.getLogger(__name__)

PIXEL_SCALE = 127.5
"""[-1, 1] units to the [0, 255] scale of the distortion."""

FIRST_FRACTION = 0.1
"""The verdict's "first" and "last" part of the reverse process: 10 % of the steps (or of the
rate)."""


def coding_table(bound: dict[str, torch.Tensor], T: int) -> pd.DataFrame:
    """The rate and distortion at every t (T down to 1, then the decoder at t = 0) from what
    :meth:`~ddpm.diffusion.GaussianDiffusion.variational_bound` returns for N test images.

    Rates are means over the images (bits per dimension); distortions are root mean squared
    errors over every pixel of the N images, on the [0, 255] scale.
    """
    terms = bound["terms"].double().cpu()  # column s - 1 holds L_{s-1}
    prior = bound["prior"].double().cpu()
    # Bits sent once x_t has arrived: the prior and L_{T-1}, ..., L_t (columns t .. T - 1).
    after = torch.flip(torch.cumsum(torch.flip(terms, [1]), 1), [1])  # after[:, j] = sum j..T-1
    steps = np.arange(T, 0, -1)
    sent = [(prior + (after[:, t] if t < T else 0.0)).mean().item() for t in steps]
    x0_mse = bound["x0_mse"].double().cpu().mean(0)
    table = pd.DataFrame(
        {
            "t": [*steps, 0],
            "rate_bits_per_dim": [*sent, bound["total"].double().mean().item()],
            "distortion_rmse": [
                *(PIXEL_SCALE * x0_mse[steps - 1].sqrt()).tolist(),
                PIXEL_SCALE * math.sqrt(bound["decoder_mse"].double().mean().item()),
            ],
        }
    )
    table.insert(1, "t_over_T", table["t"] / T)
    table["images"] = int(terms.shape[0])
    return table


def rate_distortion(
    model_path: str | os.PathLike,
    images_uint8: torch.Tensor,
    *,
    seed: int = 0,
    device: str = "auto",
    precision: str = "fp32",
) -> pd.DataFrame:
    """The rate–distortion table (:func:`coding_table`) of the model in ``model_path`` on
    ``images_uint8`` (held-out test images, uint8 N x C x H x W), with the run's identifiers
    (dataset, schedule label, T, seed, prediction) from its record.

    ``seed`` seeds the forward noise of each term; ``precision`` defaults to float32, because the
    bound's small-t terms divide squared errors by variances of order 1e-5, which bf16 rounding
    would swamp.
    """
    from .diffusion import to_model_range
    from .sampling import _load_noise_predictor
    from .spec import RunSpec

    predictor, diffusion, _, device, _, record = _load_noise_predictor(
        model_path, device, precision, max(1, len(images_uint8))
    )
    x0 = to_model_range(images_uint8).to(device)
    started = time.perf_counter()
    logger.info(
        "rate and distortion of %s: %d test images, %d steps", model_path, len(x0), diffusion.T
    )
    with torch.inference_mode():
        bound = diffusion.variational_bound(
            predictor, x0, generator=torch.Generator().manual_seed(seed)
        )
    table = coding_table(bound, diffusion.T)
    logger.info(
        "bound %.3f bits/dim (decoder %.3f), distortion %.1f at t = T, %.2f decoded; %.1f s",
        table["rate_bits_per_dim"].iloc[-1],
        bound["decoder"].double().mean().item(),
        table["distortion_rmse"].iloc[0],
        table["distortion_rmse"].iloc[-1],
        time.perf_counter() - started,
    )
    spec = RunSpec.from_dict(record)
    identifiers = {
        "dataset": spec.dataset,
        "schedule": spec.schedule.label,
        "T": spec.schedule.T,
        "seed": spec.seed,
        "prediction": diffusion.prediction,
    }
    for position, (key, value) in enumerate(identifiers.items()):
        table.insert(position, key, value)
    return table


def read_coding_tables(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The tables :func:`rate_distortion` wrote (one CSV per run), stacked."""
    tables = [pd.read_csv(Path(path)) for path in paths]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _shares(run: pd.DataFrame) -> dict:
    """One run's numbers for the verdict; ``run`` holds its rows t = T .. 0."""
    T = int(run["T"].iloc[0])
    k = max(1, round(FIRST_FRACTION * T))  # steps in a tenth of the reverse process
    by_t = run.set_index("t")
    total = float(by_t.loc[0, "rate_bits_per_dim"])
    start_distortion = float(by_t.loc[T, "distortion_rmse"])
    # Reverse order (T .. 0): the rate grows, the distortion falls.
    rate = run.sort_values("t", ascending=False)["rate_bits_per_dim"].to_numpy()
    distortion = run.sort_values("t", ascending=False)["distortion_rmse"].to_numpy()
    at_tenth_of_rate = _distortion_once_sent(FIRST_FRACTION * total, rate, distortion)
    return {
        "bound_bits_per_dim": total,
        "prior_bits_per_dim": float(by_t.loc[T, "rate_bits_per_dim"]),
        "decoder_bits_per_dim": total - float(by_t.loc[1, "rate_bits_per_dim"]),
        "rate_share_last_steps": (total - float(by_t.loc[k, "rate_bits_per_dim"])) / total,
        "rate_share_first_steps": float(by_t.loc[T - k, "rate_bits_per_dim"]) / total,
        "rate_share_first_step": (
            float(by_t.loc[T - 1, "rate_bits_per_dim"]) - float(by_t.loc[T, "rate_bits_per_dim"])
        )
        / total,
        "distortion_removed_first_steps": 1
        - float(by_t.loc[T - k, "distortion_rmse"]) / start_distortion,
        "distortion_removed_first_rate": 1 - at_tenth_of_rate / start_distortion,
        "distortion_at_T": start_distortion,
        "distortion_decoded": float(by_t.loc[0, "distortion_rmse"]),
    }


def _distortion_once_sent(bits: float, rate: np.ndarray, distortion: np.ndarray) -> float:
    """The distortion when ``bits`` have first been sent, linear between the two steps around
    it (``rate`` only grows along the reverse process but may stay flat for many steps)."""
    after = int(np.argmax(rate >= bits))
    if after == 0:
        return float(distortion[0])
    r0, r1 = rate[after - 1], rate[after]
    weight = (bits - r0) / (r1 - r0)
    return float(distortion[after - 1] + weight * (distortion[after] - distortion[after - 1]))


SHARE_COLUMNS = (
    "bound_bits_per_dim",
    "prior_bits_per_dim",
    "decoder_bits_per_dim",
    "rate_share_last_steps",
    "rate_share_first_steps",
    "rate_share_first_step",
    "distortion_removed_first_steps",
    "distortion_removed_first_rate",
    "distortion_at_T",
    "distortion_decoded",
)


def coding_shares(tables: pd.DataFrame) -> pd.DataFrame:
    """Per run (dataset, schedule, T, seed): the bound and its parts, the share of the rate spent
    in the last and in the first 10 % of the reverse steps and in the first step alone (x_T to
    x_{T-1}, the term L_{T-1}), the share of the distortion at t = T removed in the first 10 %
    of the steps and with the first 10 % of the rate, and the distortion at t = T and after
    decoding."""
    keys = ["dataset", "schedule", "T", "seed"]
    rows = [
        {**dict(zip(keys, key, strict=True)), **_shares(run)}
        for key, run in tables.groupby(keys, sort=False, dropna=False)
    ]
    return pd.DataFrame(rows, columns=[*keys, *SHARE_COLUMNS])


def write_rate_distortion(
    model_paths: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    out_paths: Sequence[str | os.PathLike],
    *,
    test_images: int = 50,
    seed: int = 0,
    device: str = "auto",
    precision: str = "fp32",
) -> list[Path]:
    """:func:`rate_distortion` of each model on the first ``test_images`` images of the test
    split of ``data`` (the same images and the same noise for every model, so that runs compare
    on equal terms), each written as a CSV to the matching ``out_paths``."""
    from .data.store import load_split
    from .files import atomic_write_text

    if len(model_paths) != len(out_paths):
        raise ConfigError(f"{len(model_paths)} models but {len(out_paths)} output paths")
    if not isinstance(test_images, int) or isinstance(test_images, bool) or test_images < 1:
        raise ConfigError(f"test_images must be a positive integer, got {test_images!r}")
    images, _ = load_split(data, "test")
    written = []
    for model_path, out_path in zip(model_paths, out_paths, strict=True):
        table = rate_distortion(
            model_path, images[:test_images], seed=seed, device=device, precision=precision
        )
        written.append(atomic_write_text(Path(out_path), table.to_csv(index=False)))
    return written
