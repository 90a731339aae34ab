"""How fast the forward process turns an image into isotropic noise (thesis section 5.1).

The thesis's metric ("closeness"): a batch of ``n`` (50) copies of one image x_0 is
noised with q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I), the
covariance matrix C of the batch is estimated, and mean |C - I| is reported. The batch
is an n x D matrix X (one row per copy, D pixels), so "the covariance of the batch" has
two readings, both computed here:

``copies``
    The n copies are the variables and the D pixels the observations:
    ``C = np.cov(X)``, n x n. With x_0 centred over its pixels (x0c), the noise rows
    centred the same way (e_i) and s^2 = x0c . x0c / (D - 1) (the image's pixel
    variance),

        C_ij = alpha_bar s^2 + sqrt(alpha_bar (1 - alpha_bar)) (u_i + u_j) + (1 - alpha_bar) G_ij,
        u_i = e_i . x0c / (D - 1),   G_ij = e_i . e_j / (D - 1).

    The image is in every entry through alpha_bar s^2; once it is gone the off-diagonal
    entries are sampling noise of size about 1/sqrt(D), so the curve falls to a floor of
    about sqrt(2 / (pi D)) that is higher for small images: a small image reaches it
    earlier. This reading reproduces the thesis's curves.
``pixels``
    The D pixels are the variables and the n copies the observations:
    ``C = np.cov(X, rowvar=False)``, D x D. Every copy has the same mean sqrt(alpha_bar) x_0,
    so centring over the copies removes the image exactly: C = (1 - alpha_bar) S with S
    the sample covariance of the n noise draws. This reading never sees the image.

The exact counterparts need no sampling: alpha_bar_t, log-SNR and
KL(q(x_t | x_0) || N(0, I)) in bits per dimension (it depends on x_0 only through its
mean square). A reference for "close to noise" is the *pure-noise band*: the spread of
each reading when the batch is drawn from N(0, I) at the same n and D.

Timesteps are t = 0..T (t = 0 is x_0 itself); schedules come from :mod:`ddpm.schedules`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..data.photos import load_photo
from ..schedules import ScheduleSpec
from .specs import unique_specs

__all__ = [
    "batch_closeness",
    "closeness_copies",
    "closeness_pixels",
    "closeness_table",
    "pure_noise_closeness",
    "square_grayscale",
]

logger = logging.getLogger(__name__)


# --- images -------------------------------------------------------------------------------------
def square_grayscale(photo: np.ndarray, size: int | None = None) -> np.ndarray:
    """uint8 photo (H, W, 3) or (H, W) -> grayscale, centre-cropped square, resized to ``size``.

    Grayscale is ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B); resizing uses Lanczos
    (anti-aliased when shrinking). Returns uint8 (size, size).
    """
    from PIL import Image

    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim not in (2, 3):
        raise ValueError(
            f"photo must be a uint8 array (H, W) or (H, W, 3), got {photo.dtype} {photo.shape}"
        )
    if photo.ndim == 3:
        if photo.shape[2] != 3:
            raise ValueError(f"a colour photo must be (H, W, 3), got {photo.shape}")
        luma = photo.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        photo = np.clip(np.round(luma), 0, 255).astype(np.uint8)
    height, width = photo.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = photo[top : top + side, left : left + side]
    if size is None or size == side:
        return square.copy()
    if not 1 <= size <= side:
        raise ValueError(f"image size must be in 1..{side} (the photo's shorter side), got {size}")
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.LANCZOS))


# --- the two readings -----------------------------------------------------------------------
def _as_batch(batch) -> np.ndarray:
    batch = np.asarray(batch, dtype=np.float64)
    if batch.ndim < 2 or batch.shape[0] < 2:
        raise ValueError(f"a batch is (n, ...) with n >= 2 noised copies, got shape {batch.shape}")
    return batch.reshape(batch.shape[0], -1)


def closeness_copies(batch) -> float:
    """mean |C - I| with C = np.cov(X), the n x n covariance of the copies over the pixels.

    ``batch`` is (n, ...) : n noised copies of one image. Reference implementation of the
    "copies" reading (:func:`batch_closeness` computes the same thing faster).
    """
    X = _as_batch(batch)
    C = np.cov(X)  # rows are the variables (copies), columns the observations (pixels)
    return float(np.abs(C - np.eye(X.shape[0])).mean())


def closeness_pixels(batch) -> float:
    """mean |C - I| with C = np.cov(X, rowvar=False), the D x D pixel covariance over the copies.

    Reference implementation of the "pixels" reading; it holds the D x D matrix in memory.
    """
    X = _as_batch(batch)
    C = np.atleast_2d(np.cov(X, rowvar=False))
    return float(np.abs(C - np.eye(X.shape[1])).mean())


def _gram_abs_sum(centered: np.ndarray, block: int = 128) -> float:
    """sum over all (p, q) of |(E^T E)_pq| for E of shape (n, D), without the D x D matrix.

    Rows of the upper triangle are formed ``block`` at a time (float32 products, float64
    sums); the strictly-upper part counts twice by symmetry. Blocks that fit in cache are
    about 8x faster than forming the full matrix for D = 4096.
    """
    E = np.ascontiguousarray(centered, dtype=np.float32)
    D = E.shape[1]
    total = 0.0
    for start in range(0, D, block):
        stop = min(start + block, D)
        rows = E[:, start:stop].T @ E[:, start:]
        np.abs(rows, out=rows)
        width = stop - start
        total += float(rows[:, :width].sum(dtype=np.float64))
        total += 2.0 * float(rows[:, width:].sum(dtype=np.float64))
    return total


def batch_closeness(
    x0: np.ndarray, noise: np.ndarray, alpha_bar, *, pixels: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Both readings for the batches X = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) noise.

    Args:
        x0: the image, any shape with D values (in [-1, 1]).
        noise: (n, D) standard normal draws, one row per copy.
        alpha_bar: one value or an array of them; the same noise is used for each.
        pixels: also compute the D x D reading (cost O(n D^2)); NaN otherwise.

    Returns ``(copies, pixels)``, arrays with one value per alpha_bar, equal (to rounding)
    to :func:`closeness_copies` and :func:`closeness_pixels` of each batch. They use the
    exact decompositions in the module docstring: the copies reading from u and G (O(n^2 D)
    once, O(n^2) per alpha_bar), the pixels reading from C = (1 - alpha_bar) S with
    sum_{p != q} |S_pq| computed once and the D diagonal entries per alpha_bar.
    """
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    noise = np.asarray(noise, dtype=np.float64)
    ab = np.atleast_1d(np.asarray(alpha_bar, dtype=np.float64))
    if noise.ndim != 2 or noise.shape[1] != x0.size or noise.shape[0] < 2:
        raise ValueError(
            f"noise must be (n, D) with n >= 2 and D = x0.size = {x0.size}, got {noise.shape}"
        )
    if x0.size < 2:
        raise ValueError("the image needs at least 2 pixels for a covariance over pixels")
    if np.any((ab < 0) | (ab > 1)):
        raise ValueError(f"alpha_bar must lie in [0, 1], got {ab}")
    n, D = noise.shape

    # copies: n x n, estimated over the D pixels
    x0c = x0 - x0.mean()
    e = noise - noise.mean(axis=1, keepdims=True)
    s2 = x0c @ x0c / (D - 1)
    u = e @ x0c / (D - 1)
    G = e @ e.T / (D - 1)
    a = ab[:, None, None]
    C = a * s2 + np.sqrt(a * (1.0 - a)) * (u[:, None] + u[None, :]) + (1.0 - a) * G
    copies = np.abs(C - np.eye(n)).mean(axis=(1, 2))

    if not pixels:
        return copies, np.full_like(ab, np.nan)
    # pixels: D x D, estimated over the n copies; the image cancels when centring
    k = noise - noise.mean(axis=0, keepdims=True)
    diag = (k * k).sum(axis=0) / (n - 1)
    off_diagonal = _gram_abs_sum(k) / (n - 1) - diag.sum()
    c = 1.0 - ab
    pix = (c * off_diagonal + np.abs(c[:, None] * diag[None, :] - 1.0).sum(axis=1)) / D**2
    return copies, pix


def pure_noise_closeness(
    batch_size: int, num_pixels: int, repeats: int = 200, seed: int = 0, pixels: bool = True
) -> pd.DataFrame:
    """Both readings for batches of pure N(0, I) noise: one row per repeat.

    This is the reference "as close to noise as a batch of this size can look". The
    draws come from ``numpy.random.default_rng([seed, num_pixels, 1])``.
    """
    if batch_size < 2 or num_pixels < 2 or repeats < 1:
        raise ValueError(
            f"need batch_size >= 2, num_pixels >= 2 and repeats >= 1, got "
            f"{batch_size}, {num_pixels}, {repeats}"
        )
    rng = np.random.default_rng([seed, num_pixels, 1])
    zeros = np.zeros(num_pixels)
    rows = []
    for repeat in range(repeats):
        noise = rng.standard_normal((batch_size, num_pixels))
        copies, pix = batch_closeness(zeros, noise, 0.0, pixels=pixels)
        rows.append((repeat, copies[0], pix[0]))
    return pd.DataFrame(rows, columns=["repeat", "closeness_copies", "closeness_pixels"])


def _band(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float, float]:
    if np.all(np.isnan(values)):
        return math.nan, math.nan, math.nan
    low, high = np.percentile(values, percentiles)
    return float(values.mean()), float(low), float(high)


# --- the table --------------------------------------------------------------------------------
def closeness_table(
    specs: Sequence[ScheduleSpec],
    photo: str | np.ndarray = "china.jpg",
    image_sizes: Sequence[int] = (8, 16, 32, 64),
    batch_size: int = 50,
    seed: int = 0,
    noise_repeats: int = 200,
    band_percentiles: tuple[float, float] = (2.5, 97.5),
    pixels_max_size: int | None = 64,
    pixels_t_stride: int = 1,
    include_t0: bool = True,
    photo_name: str | None = None,
) -> pd.DataFrame:
    """The thesis's closeness to noise, both readings and the exact counterparts.

    Args:
        specs: the schedules (:class:`ddpm.spec.ScheduleSpec`), e.g. from
            :func:`ddpm.analysis.specs_from_config`; each label appears once per T.
        photo: a scikit-learn photo name or a uint8 array (H, W, 3) / (H, W); it is made
            grayscale, centre-cropped square and resized to each of ``image_sizes``.
        batch_size: n, the number of noised copies (the thesis used 50).
        seed: the noise for image size s comes from ``default_rng([seed, s*s, 0])``, one
            (n, D) draw per t in order: each t gets fresh noise, as when the batch is passed
            through q(x_t | x_0) at every step, and every schedule at step t sees the same
            draw (common random numbers), so schedules differ only by alpha_bar_t.
        noise_repeats: batches of pure noise that make the noise band (per image size).
        band_percentiles: the band's lower and upper percentiles over those repeats.
        pixels_max_size: compute the D x D reading only for sizes up to this (None: all);
            it costs O(n D^2 / 2) per t, about 15 ms at 64 x 64.
        pixels_t_stride: compute the D x D reading at t = 0, 1 and every multiple of this.
        include_t0: add t = 0 (x_0 itself: alpha_bar = 1, log-SNR and KL infinite).
        photo_name: the name recorded for an array ``photo``.

    Returns one row per (schedule, T, image_size, t) with columns photo, schedule,
    beta_schedule, T, image_size, num_pixels, batch_size, t, alpha_bar, log_snr,
    kl_bits_per_dim, closeness_copies, closeness_pixels (NaN where not computed) and
    noise_mean / noise_band_low / noise_band_high for each reading (``_copies``, ``_pixels``).
    """
    specs = unique_specs(specs)
    _check_table_arguments(batch_size, pixels_t_stride, image_sizes)
    if isinstance(photo, str):
        photo_name, photo = photo_name or photo, load_photo(photo)
    photo_name = photo_name or "photo"
    schedules = [(spec, spec.build()) for spec in specs]
    settings = _TableSettings(
        batch_size, seed, noise_repeats, band_percentiles, pixels_t_stride, include_t0
    )
    frames = []
    for size in image_sizes:
        size = int(size)
        started = time.perf_counter()
        # to_model_range's mapping of uint8 to [-1, 1], in float64
        x0 = square_grayscale(photo, size).astype(np.float64) / 127.5 - 1.0
        pixels = pixels_max_size is None or size <= pixels_max_size
        common = {"photo": photo_name, "image_size": size, "batch_size": batch_size}
        frames += _frames_at_size(x0, schedules, pixels, settings, common)
        logger.info(
            "closeness %dx%d (D=%d, n=%d, %d schedules, pixels reading %s): %.1f s",
            *(size, size, x0.size, batch_size, len(schedules), "yes" if pixels else "no"),
            time.perf_counter() - started,
        )
    return pd.concat(frames, ignore_index=True)


class _TableSettings(NamedTuple):
    """The arguments of :func:`closeness_table` that every image size uses alike."""

    batch_size: int
    seed: int
    noise_repeats: int
    band_percentiles: tuple[float, float]
    pixels_t_stride: int
    include_t0: bool


def _frames_at_size(
    x0: np.ndarray, schedules: list, pixels: bool, settings: _TableSettings, common: dict
) -> list[pd.DataFrame]:
    """The table's rows at one image size (``x0``), one frame per ``(spec, schedule)``."""
    noise_runs = pure_noise_closeness(
        settings.batch_size, x0.size, settings.noise_repeats, settings.seed, pixels=pixels
    )
    bands = {
        reading: _band(noise_runs[f"closeness_{reading}"].to_numpy(), settings.band_percentiles)
        for reading in ("copies", "pixels")
    }
    copies, pix = _closeness_curves(x0, schedules, pixels, settings)
    return [
        _schedule_frame(
            x0, spec, schedule, copies[index], pix[index], bands, settings.include_t0, common
        )
        for index, (spec, schedule) in enumerate(schedules)
    ]


def _check_table_arguments(batch_size: int, pixels_t_stride: int, image_sizes) -> None:
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 to estimate a covariance, got {batch_size}")
    if pixels_t_stride < 1:
        raise ValueError(f"pixels_t_stride must be >= 1, got {pixels_t_stride}")
    if not image_sizes:
        raise ValueError("image_sizes is empty; give at least one size, e.g. [8, 16, 32, 64]")
    if any(int(size) < 2 for size in image_sizes):
        raise ValueError(f"every image size must be >= 2, got {list(image_sizes)}")


def _closeness_curves(
    x0: np.ndarray, schedules: list, pixels: bool, settings: _TableSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Both readings for every schedule (rows) and t = 0..T_max (columns); NaN where not
    computed. All schedules see the same noise draw at each t (see :func:`closeness_table`)."""
    batch_size, seed, include_t0 = settings.batch_size, settings.seed, settings.include_t0
    T_max = max(spec.T for spec, _ in schedules)
    D = x0.size
    # alpha_bar_0 = 1, ..., alpha_bar_T per schedule; NaN past a shorter schedule's T
    alpha_bars = np.stack(
        [np.concatenate([[1.0], s.alpha_bar, np.full(T_max - s.T, np.nan)]) for _, s in schedules]
    )
    copies = np.full((len(schedules), T_max + 1), np.nan)
    pix = np.full((len(schedules), T_max + 1), np.nan)
    rng = np.random.default_rng([seed, D, 0])
    steps = range(0 if include_t0 else 1, T_max + 1)
    size = int(math.isqrt(D))
    for t in tqdm(steps, desc=f"closeness {size}x{size}", mininterval=10, leave=False):
        # t = 0 needs no noise (alpha_bar = 1); drawing only for t >= 1 keeps the
        # stream the same with and without t = 0.
        noise = rng.standard_normal((batch_size, D)) if t >= 1 else np.zeros((batch_size, D))
        valid = ~np.isnan(alpha_bars[:, t])
        with_pixels = pixels and (t <= 1 or t % settings.pixels_t_stride == 0)
        c, p = batch_closeness(x0, noise, alpha_bars[valid, t], pixels=with_pixels)
        copies[valid, t], pix[valid, t] = c, p
    return copies, pix


def _schedule_frame(
    x0: np.ndarray,
    spec: ScheduleSpec,
    schedule,
    copies: np.ndarray,
    pix: np.ndarray,
    bands: dict[str, tuple[float, float, float]],
    include_t0: bool,
    common: dict,
) -> pd.DataFrame:
    """The table's rows of one schedule at one image size, with the exact counterparts."""
    t = np.arange(0 if include_t0 else 1, schedule.T + 1)
    second_moment = float(np.mean(x0**2))
    frame = {
        "photo": common["photo"],
        "schedule": spec.label,
        "beta_schedule": spec.beta_schedule,
        "T": schedule.T,
        "image_size": common["image_size"],
        "num_pixels": x0.size,
        "batch_size": common["batch_size"],
        "t": t,
        "alpha_bar": np.concatenate([[1.0], schedule.alpha_bar])[t],
        "log_snr": np.concatenate([[np.inf], schedule.log_snr])[t],
        "kl_bits_per_dim": np.concatenate(
            [[np.inf], schedule.kl_to_standard_normal(second_moment)]
        )[t],
        "closeness_copies": copies[t],
        "closeness_pixels": pix[t],
    }
    for reading, (mean, low, high) in bands.items():
        frame[f"noise_mean_{reading}"] = mean
        frame[f"noise_band_low_{reading}"] = low
        frame[f"noise_band_high_{reading}"] = high
    return pd.DataFrame(frame)
