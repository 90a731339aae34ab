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
:mod:`.closeness_study` tabulates both readings over schedules, image sizes and t.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from .. import ConfigError

__all__ = [
    "batch_closeness",
    "closeness_copies",
    "closeness_pixels",
    "noise_band",
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
        raise ConfigError(
            f"photo must be a uint8 array (H, W) or (H, W, 3), got {photo.dtype} {photo.shape}"
        )
    if photo.ndim == 3:
        if photo.shape[2] != 3:
            raise ConfigError(f"a colour photo must be (H, W, 3), got {photo.shape}")
        luma = photo.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        photo = np.clip(np.round(luma), 0, 255).astype(np.uint8)
    height, width = photo.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = photo[top : top + side, left : left + side]
    if size is None or size == side:
        return square.copy()
    if not 1 <= size <= side:
        raise ConfigError(f"image size must be in 1..{side} (the photo's shorter side), got {size}")
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.LANCZOS))


# --- the two readings -----------------------------------------------------------------------
def _as_batch(batch) -> np.ndarray:
    batch = np.asarray(batch, dtype=np.float64)
    if batch.ndim < 2 or batch.shape[0] < 2:
        raise ConfigError(f"a batch is (n, ...) with n >= 2 noised copies, got shape {batch.shape}")
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
        raise ConfigError(
            f"noise must be (n, D) with n >= 2 and D = x0.size = {x0.size}, got {noise.shape}"
        )
    if x0.size < 2:
        raise ConfigError("the image needs at least 2 pixels for a covariance over pixels")
    if np.any((ab < 0) | (ab > 1)):
        raise ConfigError(f"alpha_bar must lie in [0, 1], got {ab}")
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
        raise ConfigError(
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


def noise_band(
    values: np.ndarray, percentiles: tuple[float, float]
) -> tuple[float, float, float, float]:
    """(mean, lower percentile, upper percentile, sd) of one reading over pure-noise repeats."""
    if np.all(np.isnan(values)):
        return math.nan, math.nan, math.nan, math.nan
    low, high = np.percentile(values, percentiles)
    return float(values.mean()), float(low), float(high), float(values.std(ddof=1))
