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

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .diffusion import GaussianDiffusion, from_model_range, to_model_range
from .schedules import NoiseSchedule, make_schedule

__all__ = [
    "DEFAULT_DESTRUCTION_KEEP",
    "THESIS_CLAIMS",
    "batch_closeness",
    "closeness_copies",
    "closeness_pixels",
    "closeness_table",
    "closest_points",
    "compare_with_thesis",
    "explain_closeness_readings",
    "forward_samples",
    "iterative_destruction",
    "load_images_by_t",
    "load_photo",
    "pure_noise_closeness",
    "report_003_schedule_specs",
    "save_images_by_t",
    "schedule_table",
    "specs_from_config",
    "square_grayscale",
    "thesis_schedule_specs",
]

logger = logging.getLogger(__name__)

# Steps shown in the thesis-style destruction figure. With T = 5000 linear betas from 0.001
# to 0.02, alpha_bar_t is 0.89 at t = 100, 0.38 at 500, 0.055 at 1000, 0.003 at 1500 and
# 7e-5 at 2000: the last column is pure noise.
DEFAULT_DESTRUCTION_KEEP = (0, 50, 100, 200, 500, 1000, 1500, 5000)
"""The steps thesis figure 4.3 shows for T = 5000; other T keep the same fractions of T."""


def _fractions_of(T: int, fractions) -> list[int]:
    return sorted({round(T * f) for f in fractions})


# The thesis's statements about figure 5.2 (section 5.1).
THESIS_CLAIMS = {
    "linear_small": 600,  # "closest point to pure noise already after around 600 steps for small images"
    "linear_large": 700,  # "... and after around 700 for larger images"
    "cosine_at_least": 850,  # cosine "still capable providing value for at least 850 timesteps"
}


# --- schedule specifications ------------------------------------------------------------------
def thesis_schedule_specs(T: int = 1000) -> list[tuple[str, str, int, dict]]:
    """The thesis's schedules (Ho's linear, Nichol's cosine) plus the sigmoid, as
    ``(label, beta_schedule, T, params)``."""
    return [
        ("linear", "linear", T, {"beta_start": 1e-4, "beta_end": 0.02}),
        ("cosine", "cosine", T, {"s": 0.008, "beta_max": 0.999}),
        ("sigmoid", "sigmoid", T, {"beta_start": 1e-4, "beta_end": 0.02}),
    ]


def report_003_schedule_specs(
    Ts: Iterable[int] = (50, 100, 200, 400, 800),
) -> list[tuple[str, str, int, dict]]:
    """Report 003's three schedules with its exact constants, for every T in ``Ts``.

    Linear and sigmoid run from 1e-5 to 0.01, both ends scaled by 1000/T; the sigmoid is
    the report's code verbatim (no ``+ start``); cosine has s = 0.002 and betas clipped
    to [1e-5, 0.9999].
    """
    specs = []
    for T in Ts:
        ends = {"beta_start": 1e-5, "beta_end": 0.01, "rescale_to_T": True}
        specs.append(("linear", "linear", T, dict(ends)))
        specs.append(("cosine", "cosine", T, {"s": 0.002, "beta_min": 1e-5, "beta_max": 0.9999}))
        specs.append(("sigmoid", "sigmoid", T, {**ends, "add_start": False}))
    return specs


def specs_from_config(
    schedules: Mapping[str, Mapping], T_values: Iterable[int]
) -> list[tuple[str, str, int, dict]]:
    """``{label: {"beta_schedule": name, "params": {...}}}`` x T values -> spec tuples."""
    specs = []
    for label, definition in schedules.items():
        if "beta_schedule" not in definition:
            raise ValueError(
                f"schedule {label!r} has no 'beta_schedule' entry; give its name, e.g. linear"
            )
        for T in T_values:
            specs.append(
                (label, definition["beta_schedule"], int(T), dict(definition.get("params") or {}))
            )
    return specs


def _normalise_specs(specs: Sequence[Sequence]) -> list[tuple[str, str, int, dict]]:
    """Accept ``(name, T, params)`` or ``(label, name, T, params)``; labels must be unique per T."""
    out, seen = [], set()
    for spec in specs:
        if len(spec) == 3:
            name, T, params = spec
            label = name
        elif len(spec) == 4:
            label, name, T, params = spec
        else:
            raise ValueError(
                f"a schedule spec is (name, T, params) or (label, name, T, params), got {spec!r}"
            )
        if (label, T) in seen:
            raise ValueError(
                f"schedule {label!r} with T={T} is given twice; give each variant its own label"
            )
        seen.add((label, T))
        out.append((str(label), str(name), int(T), dict(params or {})))
    if not out:
        raise ValueError("no schedules given; pass at least one (name, T, params)")
    return out


def schedule_table(specs: Sequence[Sequence]) -> pd.DataFrame:
    """One row per (schedule, T, t): schedule, beta_schedule, T, t, beta, alpha_bar, log_snr, params.

    ``specs`` holds ``(name, T, params)`` or ``(label, name, T, params)`` tuples; ``params``
    are passed to :func:`ddpm.schedules.make_schedule` and recorded as JSON.
    """
    frames = []
    for label, name, T, params in _normalise_specs(specs):
        schedule = make_schedule(name, T, **params)
        frame = schedule.to_frame()[["t", "beta", "alpha_bar", "log_snr"]]
        frame.insert(0, "T", T)
        frame.insert(0, "beta_schedule", name)
        frame.insert(0, "schedule", label)
        frame["params"] = json.dumps(schedule.params, sort_keys=True)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# --- images -------------------------------------------------------------------------------------
def load_photo(name: str = "china.jpg") -> np.ndarray:
    """A photo shipped with scikit-learn ("china.jpg" or "flower.jpg"), uint8 (H, W, 3)."""
    try:  # the dataset module, when present, owns photo loading
        from .data import load_photo as data_load_photo
    except ImportError:
        data_load_photo = None
    if data_load_photo is not None:
        return np.asarray(data_load_photo(name))
    from sklearn.datasets import load_sample_image

    try:
        return load_sample_image(name)
    except AttributeError as error:  # scikit-learn's way of saying "no such image"
        raise ValueError(f"no sample photo {name!r}; use 'china.jpg' or 'flower.jpg'") from error


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
    specs: Sequence[Sequence] | None = None,
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
        specs: schedules as ``(name, T, params)`` or ``(label, name, T, params)``; default
            :func:`thesis_schedule_specs` (T = 1000).
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
    specs = _normalise_specs(thesis_schedule_specs() if specs is None else specs)
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 to estimate a covariance, got {batch_size}")
    if pixels_t_stride < 1:
        raise ValueError(f"pixels_t_stride must be >= 1, got {pixels_t_stride}")
    if not image_sizes:
        raise ValueError("image_sizes is empty; give at least one size, e.g. [8, 16, 32, 64]")
    if any(int(size) < 2 for size in image_sizes):
        raise ValueError(f"every image size must be >= 2, got {list(image_sizes)}")
    if isinstance(photo, str):
        photo_name, photo = photo_name or photo, load_photo(photo)
    photo_name = photo_name or "photo"
    schedules = [
        (label, name, T, make_schedule(name, T, **params)) for label, name, T, params in specs
    ]
    T_max = max(T for _, _, T, _ in schedules)

    frames = []
    for size in image_sizes:
        size = int(size)
        started = time.perf_counter()
        # to_model_range's mapping of uint8 to [-1, 1], in float64
        x0 = square_grayscale(photo, size).astype(np.float64) / 127.5 - 1.0
        D = x0.size
        pixels = pixels_max_size is None or size <= pixels_max_size
        noise_runs = pure_noise_closeness(batch_size, D, noise_repeats, seed, pixels=pixels)
        band_copies = _band(noise_runs["closeness_copies"].to_numpy(), band_percentiles)
        band_pixels = _band(noise_runs["closeness_pixels"].to_numpy(), band_percentiles)

        # alpha_bar_0 = 1, ..., alpha_bar_T per schedule; NaN past a shorter schedule's T
        alpha_bars = np.stack(
            [
                np.concatenate([[1.0], s.alpha_bar, np.full(T_max - s.T, np.nan)])
                for *_, s in schedules
            ]
        )
        copies = np.full((len(schedules), T_max + 1), np.nan)
        pix = np.full((len(schedules), T_max + 1), np.nan)
        rng = np.random.default_rng([seed, D, 0])
        steps = range(0 if include_t0 else 1, T_max + 1)
        for t in tqdm(steps, desc=f"closeness {size}x{size}", mininterval=10, leave=False):
            # t = 0 needs no noise (alpha_bar = 1); drawing only for t >= 1 keeps the
            # stream the same with and without t = 0.
            noise = rng.standard_normal((batch_size, D)) if t >= 1 else np.zeros((batch_size, D))
            valid = ~np.isnan(alpha_bars[:, t])
            with_pixels = pixels and (t <= 1 or t % pixels_t_stride == 0)
            c, p = batch_closeness(x0, noise, alpha_bars[valid, t], pixels=with_pixels)
            copies[valid, t], pix[valid, t] = c, p

        second_moment = float(np.mean(x0**2))
        for index, (label, name, T, schedule) in enumerate(schedules):
            t = np.arange(0 if include_t0 else 1, T + 1)
            ab = np.concatenate([[1.0], schedule.alpha_bar])[t]
            kl = np.concatenate([[np.inf], schedule.kl_to_standard_normal(second_moment)])[t]
            log_snr = np.concatenate([[np.inf], schedule.log_snr])[t]
            frames.append(
                pd.DataFrame(
                    {
                        "photo": photo_name,
                        "schedule": label,
                        "beta_schedule": name,
                        "T": T,
                        "image_size": size,
                        "num_pixels": D,
                        "batch_size": batch_size,
                        "t": t,
                        "alpha_bar": ab,
                        "log_snr": log_snr,
                        "kl_bits_per_dim": kl,
                        "closeness_copies": copies[index, t],
                        "closeness_pixels": pix[index, t],
                        "noise_mean_copies": band_copies[0],
                        "noise_band_low_copies": band_copies[1],
                        "noise_band_high_copies": band_copies[2],
                        "noise_mean_pixels": band_pixels[0],
                        "noise_band_low_pixels": band_pixels[1],
                        "noise_band_high_pixels": band_pixels[2],
                    }
                )
            )
        logger.info(
            "closeness %dx%d (D=%d, n=%d, %d schedules, pixels reading %s): %.1f s",
            size,
            size,
            D,
            batch_size,
            len(schedules),
            "yes" if pixels else "no",
            time.perf_counter() - started,
        )
    return pd.concat(frames, ignore_index=True)


# --- closest points ---------------------------------------------------------------------------
def _first(t: np.ndarray, mask: np.ndarray) -> float:
    return float(t[mask][0]) if mask.any() else math.nan


def closest_points(
    table: pd.DataFrame, smooth_window: int = 21, kl_total_bits: float = 1.0
) -> pd.DataFrame:
    """When each curve of :func:`closeness_table` is as close to noise as noise itself.

    One row per (photo, schedule, T, image_size), over t >= 1, for each reading
    (``_copies``, ``_pixels``):

    - ``t_enter``: the first t whose value lies inside the pure-noise band;
    - ``t_enter_smoothed``: the same for the centred running mean over ``smooth_window``
      steps, so that a single lucky draw cannot make the crossing early;
    - ``t_argmin``: the t of the smallest value (the thesis's "closest point"; in the
      copies reading it falls somewhere in the noise floor, in the pixels reading at t = 1);
    - ``alpha_bar_at_enter``: alpha_bar_t at ``t_enter``.

    ``t_kl_total_below`` is the exact counterpart: the first t at which the KL over the
    whole image, D x kl_bits_per_dim, is at most ``kl_total_bits`` bits. Missing values
    (never entered, reading not computed) are NaN.
    """
    if smooth_window < 1:
        raise ValueError(f"smooth_window must be >= 1, got {smooth_window}")
    keys = ["photo", "schedule", "T", "image_size"]
    missing = sorted(
        set(keys + ["t", "num_pixels", "alpha_bar", "kl_bits_per_dim"]) - set(table.columns)
    )
    if missing:
        raise ValueError(f"the table lacks columns {missing}; pass the output of closeness_table")
    rows = []
    for key, group in table[table["t"] >= 1].groupby(keys, sort=False):
        group = group.sort_values("t")
        t = group["t"].to_numpy()
        row = dict(zip(keys, key, strict=True))
        row["num_pixels"] = int(group["num_pixels"].iloc[0])
        for reading in ("copies", "pixels"):
            values = group[f"closeness_{reading}"]
            computed = values.notna().to_numpy()
            low = group[f"noise_band_low_{reading}"].to_numpy()
            high = group[f"noise_band_high_{reading}"].to_numpy()
            v = values.to_numpy()
            inside = computed & (v >= low) & (v <= high)
            smoothed = values[computed].rolling(smooth_window, center=True, min_periods=1).mean()
            inside_smoothed = np.zeros_like(inside)
            inside_smoothed[computed] = (smoothed >= low[computed]) & (smoothed <= high[computed])
            t_enter = _first(t, inside)
            row[f"t_enter_{reading}"] = t_enter
            row[f"t_enter_smoothed_{reading}"] = _first(t, inside_smoothed)
            row[f"t_argmin_{reading}"] = (
                float(t[computed][np.argmin(v[computed])]) if computed.any() else math.nan
            )
            row[f"alpha_bar_at_enter_{reading}"] = (
                float(group["alpha_bar"].to_numpy()[t == t_enter][0])
                if not math.isnan(t_enter)
                else math.nan
            )
        total_kl = group["kl_bits_per_dim"].to_numpy() * row["num_pixels"]
        row["t_kl_total_below"] = _first(t, total_kl <= kl_total_bits)
        row["kl_total_threshold_bits"] = kl_total_bits
        rows.append(row)
    return pd.DataFrame(rows)


def compare_with_thesis(
    closest: pd.DataFrame, reading: str = "copies", column: str = "t_enter"
) -> pd.DataFrame:
    """Our closest points next to the thesis's statements (section 5.1), one row per claim.

    The thesis reports ~600 steps (linear, small images), ~700 (linear, large images),
    >= 850 (cosine), i.e. linear reaches noise earlier than cosine and small images
    earlier than large ones. "Small" is the smallest image size in ``closest``, "large"
    the largest. ``column`` picks the closest-point definition (``t_enter``,
    ``t_enter_smoothed`` or ``t_argmin``) of ``reading``.

    Columns: claim, thesis_t (NaN for the direction claims), ours_t, agrees, detail. For the
    two "around" claims ``agrees`` says whether ours is within 15 % of the thesis's number.
    """
    if reading not in ("copies", "pixels"):
        raise ValueError(f"reading must be 'copies' or 'pixels', got {reading!r}")
    name = f"{column}_{reading}"
    if name not in closest.columns:
        raise ValueError(f"closest has no column {name!r}; pass the output of closest_points")
    present = set(closest["schedule"])
    if not {"linear", "cosine"} <= present:
        raise ValueError(
            f"the thesis compares the 'linear' and 'cosine' schedules; the table has {sorted(present)}"
        )
    photo = closest["photo"].iloc[0]
    part = closest[closest["photo"] == photo]
    small, large = int(part["image_size"].min()), int(part["image_size"].max())

    def ours(schedule: str, size: int) -> float:
        hit = part[(part["schedule"] == schedule) & (part["image_size"] == size)][name]
        return float(hit.iloc[0]) if len(hit) else math.nan

    def size_label(size: int) -> str:
        return f"{size}x{size}"

    rows = []
    for claim_key, size, text in (
        ("linear_small", small, "linear, small images: closest point after ~600 steps"),
        ("linear_large", large, "linear, large images: closest point after ~700 steps"),
    ):
        value, thesis = ours("linear", size), THESIS_CLAIMS[claim_key]
        rows.append(
            {
                "claim": text,
                "thesis_t": thesis,
                "ours_t": value,
                "agrees": bool(abs(value - thesis) <= 0.15 * thesis)
                if not math.isnan(value)
                else False,
                "detail": f"ours at {size_label(size)}: {value:g} ({value - thesis:+g} steps)",
            }
        )
    for size in sorted(part["image_size"].unique()):
        value = ours("cosine", int(size))
        rows.append(
            {
                "claim": "cosine: still short of noise for at least 850 steps",
                "thesis_t": THESIS_CLAIMS["cosine_at_least"],
                "ours_t": value,
                "agrees": bool(value >= THESIS_CLAIMS["cosine_at_least"]),
                "detail": f"ours at {size_label(int(size))}: {value:g}",
            }
        )
    for size in sorted(part["image_size"].unique()):
        lin, cos = ours("linear", int(size)), ours("cosine", int(size))
        rows.append(
            {
                "claim": "direction: linear reaches noise earlier than cosine",
                "thesis_t": math.nan,
                "ours_t": lin,
                "agrees": bool(lin < cos),
                "detail": f"{size_label(int(size))}: linear {lin:g} vs cosine {cos:g}",
            }
        )
    for schedule in sorted(present):
        first, last = ours(schedule, small), ours(schedule, large)
        rows.append(
            {
                "claim": f"direction: small images reach noise earlier than large ({schedule})",
                "thesis_t": math.nan,
                "ours_t": first,
                "agrees": bool(first < last),
                "detail": f"{schedule}: {size_label(small)} {first:g} vs {size_label(large)} {last:g}",
            }
        )
    table = pd.DataFrame(rows)
    table.insert(0, "definition", name)
    return table


def explain_closeness_readings() -> str:
    """A short Markdown text for the report: what the two readings measure and why they differ."""
    return """\
**Two readings of "the covariance of the batch".** The thesis passes n = 50 copies of one
image x_0 through q(x_t | x_0) and measures mean |C - I|. The batch is an n x D matrix
(D pixels), so there are two covariance matrices:

- *copies* (n x n, `np.cov(X)`): the copies are the variables, the pixels the observations.
  Every entry carries the image as alpha_bar_t times its pixel variance; once that is gone
  the off-diagonal entries are sampling noise of size about 1/sqrt(D), so the curve falls
  to a floor of about sqrt(2 / (pi D)). A small image has a higher floor and reaches it at
  a larger alpha_bar, i.e. earlier. This reading reproduces the thesis's curves.
- *pixels* (D x D, `np.cov(X, rowvar=False)`): the pixels are the variables, the copies
  the observations. All copies share the mean sqrt(alpha_bar_t) x_0, so centring removes
  the image exactly and C = (1 - alpha_bar_t) S, with S the sample covariance of 50 noise
  draws. This reading never sees the image: it rises from 1/D at t = 0 to the level of a
  50-sample covariance (about sqrt(2 / (pi (n - 1))) = 0.11) and only tells how close
  1 - alpha_bar_t is to 1. Its minimum is at t = 0, which is why "smallest value" cannot
  mean "closest to noise" here.

**Closest point.** A batch of pure N(0, I) noise of the same n and D does not give
mean |C - I| = 0 either; repeating it gives a band (2.5 to 97.5 percentiles). The closest
point is the first t whose value lies in that band (also after a running mean, and the
literal arg-min). **Exact counterparts** need no sampling: alpha_bar_t, the log-SNR and
KL(q(x_t | x_0) || N(0, I)) per dimension in bits; its total over the image falling below
1 bit marks when a single noised image carries less than a bit of evidence of x_0.
"""


# --- forward samples and the iterative destruction ------------------------------------------
def forward_samples(
    image: np.ndarray,
    schedule: NoiseSchedule,
    ts: Iterable[int] | None = None,
    seed: int = 0,
) -> dict[int, np.ndarray]:
    """x_t ~ q(x_t | x_0) for each t in ``ts`` (report 003, figure 2), as float32 arrays.

    ``ts`` defaults to 0, T/10, T/4, T/2, 3T/4 and T (0, 10, 25, 50, 75, 100 for T = 100).

    ``image`` is uint8, (H, W) or (C, H, W); the results have its shape, in model units
    (x_0 in [-1, 1], noise unbounded). t = 0 returns x_0. Seeded by ``seed``.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(
            f"image must be uint8 (H, W) or (C, H, W), got {image.dtype} {image.shape}"
        )
    if ts is None:
        ts = _fractions_of(schedule.T, (0, 0.1, 0.25, 0.5, 0.75, 1.0))
    diffusion = GaussianDiffusion(schedule)
    x0 = to_model_range(torch.tensor(image)).unsqueeze(0)
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for t in ts:
        t = int(t)
        if not 0 <= t <= schedule.T:
            raise ValueError(f"timestep {t} is outside 0..T={schedule.T}")
        x_t = x0 if t == 0 else diffusion.q_sample(x0, t, generator=generator)
        out[t] = x_t[0].numpy().astype(np.float32)
    return out


def iterative_destruction(
    photo: np.ndarray,
    T: int = 5000,
    beta_start: float = 0.001,
    beta_end: float = 0.02,
    keep: Iterable[int] | None = None,
    seed: int = 0,
    step_by_step: bool = True,
) -> dict[int, np.ndarray]:
    """Thesis figure 4.3: a photo through the step-by-step chain q(x_t | x_{t-1}).

    Args:
        photo: uint8 (H, W, 3) or (H, W) at full resolution (the thesis: 4016 x 6016).
        T, beta_start, beta_end: the linear schedule (the thesis: 5000 steps, 0.001 to 0.02).
        keep: the steps returned, in 0..T; the chain stops at the last one. Default:
            DEFAULT_DESTRUCTION_KEEP, as fractions of T.
        seed: seeds the noise.
        step_by_step: run every step with :meth:`GaussianDiffusion.q_step`, fresh noise for
            every pixel and channel each step (about 10 ms per step at 427 x 640 x 3 on one
            core). ``False`` jumps from one kept step s to the next t with
            q(x_t | x_s) = N(sqrt(alpha_bar_t / alpha_bar_s) x_s, (1 - alpha_bar_t / alpha_bar_s) I),
            which gives the kept images the same joint distribution (the chain is Markov) in
            one draw per kept step; the images differ, their statistics do not.

    Returns {t: uint8 image of the photo's shape}; x_t is clipped to [-1, 1] for display,
    so a pure-noise image shows about a third of its values saturated.
    """
    if keep is None:
        keep = _fractions_of(T, [k / 5000 for k in DEFAULT_DESTRUCTION_KEEP])
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim not in (2, 3):
        raise ValueError(
            f"photo must be uint8 (H, W) or (H, W, 3), got {photo.dtype} {photo.shape}"
        )
    keep = sorted({int(t) for t in keep})
    if not keep or keep[0] < 0 or keep[-1] > T:
        raise ValueError(f"keep must name steps in 0..T={T}, got {keep}")
    schedule = make_schedule("linear", T, beta_start=beta_start, beta_end=beta_end)
    diffusion = GaussianDiffusion(schedule)
    channels_last = photo.ndim == 3
    x = to_model_range(torch.tensor(photo))
    x = (x.permute(2, 0, 1) if channels_last else x[None]).unsqueeze(0)  # (1, C, H, W)
    generator = torch.Generator().manual_seed(seed)

    def as_photo(x_t: torch.Tensor) -> np.ndarray:
        image = from_model_range(x_t[0])
        return (image.permute(1, 2, 0) if channels_last else image[0]).numpy()

    out = {0: as_photo(x)} if 0 in keep else {}
    started = time.perf_counter()
    noise = torch.empty_like(x)  # refilled in place: no allocation per step
    if not step_by_step:
        alpha_bar = np.concatenate([[1.0], schedule.alpha_bar])
        previous = 0
        for t in (t for t in keep if t > 0):
            ratio = alpha_bar[t] / alpha_bar[previous]  # alpha_bar_t / alpha_bar_s
            torch.randn(noise.shape, generator=generator, out=noise)
            x = math.sqrt(ratio) * x + math.sqrt(1.0 - ratio) * noise
            out[t], previous = as_photo(x), t
        return out
    for t in tqdm(range(1, keep[-1] + 1), desc="destruction", mininterval=10, leave=False):
        torch.randn(noise.shape, generator=generator, out=noise)
        x = diffusion.q_step(x, t, noise=noise)
        if t in keep:
            out[t] = as_photo(x)
        if t % max(1, keep[-1] // 10) == 0:
            logger.info(
                "destruction: step %d / %d (%.1f s)", t, keep[-1], time.perf_counter() - started
            )
    logger.info(
        "destruction of a %s photo over %d steps: %.1f s",
        "x".join(map(str, photo.shape)),
        keep[-1],
        time.perf_counter() - started,
    )
    return out


def save_images_by_t(path, images_by_t: Mapping[int, np.ndarray]) -> None:
    """Write {t: image} to an .npz file with one array per step, named ``t<step>``."""
    np.savez_compressed(
        path, **{f"t{int(t)}": np.asarray(image) for t, image in images_by_t.items()}
    )


def load_images_by_t(path) -> dict[int, np.ndarray]:
    """Read what :func:`save_images_by_t` wrote, sorted by t."""
    with np.load(path) as archive:
        names = [name for name in archive.files if name.startswith("t") and name[1:].isdigit()]
        if not names:
            raise ValueError(
                f"{path} holds no arrays named t<step>; write it with save_images_by_t"
            )
        return {int(name[1:]): archive[name] for name in sorted(names, key=lambda n: int(n[1:]))}
