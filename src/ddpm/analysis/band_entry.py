"""When a closeness curve enters the pure-noise band, in log-SNR terms, and its prediction.

Both readings of :mod:`.closeness` depend on the schedule only through alpha_bar_t (and on
the noise draw, which every schedule shares at each t), so plotted against the log-SNR
logit(alpha_bar_t) the curves of every schedule fall onto one curve per image. This module
predicts that curve and the step at which it enters the band from what the analysis knows
(the derivation, step by step: ``docs/closeness.md``):

- **expected closeness** E(alpha_bar) of each reading. *Copies*: every entry of C - I is
  close to Gaussian, off the diagonal with mean alpha_bar s^2 and variance
  ((1 - alpha_bar)^2 + 2 alpha_bar (1 - alpha_bar) s^2) / (D - 1), on it with mean
  alpha_bar (s^2 - 1) and variance (2 (1 - alpha_bar)^2 + 4 alpha_bar (1 - alpha_bar) s^2)
  / (D - 1) (s^2: the image's pixel variance); the mean absolute value of a Gaussian is
  known in closed form. *Pixels*: C = (1 - alpha_bar) S with S the covariance of n noise
  draws, whose off-diagonal entries have E|S_pq| = sqrt(2/pi) E|chi_{n-1}| / (n - 1) and
  whose diagonal is chi^2_{n-1} / (n - 1): exact, no approximation.
- **the level**: the alpha_bar at which E meets the band's edge (the upper edge for copies,
  which fall into the band; the lower for pixels, which rise into it). It depends on the
  image, D, n and the band, not on the schedule.
- **the entry step**: the measured curve is E plus fresh noise at every t (each t draws its
  own noise), with the spread of the pure-noise repeats (scaled by how the entries' spread
  shrinks with alpha_bar), so the first step inside the band is a first passage:
  P(not yet inside after t) = prod_{s <= t} (1 - P(inside at s)). Its median is the
  predicted step; its 2.5 and 97.5 % points are the interval the measurement should fall in.

A prediction **passes** when the measured entry lies inside that interval widened by one step
on each side (the step resolution). Nothing here is fitted to the measured curves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from .. import ConfigError

__all__ = [
    "PASSAGE_QUANTILES",
    "READINGS",
    "closeness_sd",
    "collapse_verdicts",
    "crossing_alpha_bar",
    "expected_closeness",
    "first_passage",
    "logit",
    "predict_band_entry",
]

READINGS = ("copies", "pixels")

PASSAGE_QUANTILES = (0.025, 0.5, 0.975)
"""The first passage's lower point, median (the predicted step) and upper point."""


def logit(alpha_bar) -> np.ndarray:
    """log(alpha_bar / (1 - alpha_bar)), the log-SNR of q(x_t | x_0)."""
    alpha_bar = np.asarray(alpha_bar, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(alpha_bar) - np.log1p(-alpha_bar)


def _mean_abs_normal(mean, sd):
    """E|X| for X ~ N(mean, sd^2) (the folded normal's mean)."""
    mean, sd = np.asarray(mean, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    z = mean / sd
    return sd * math.sqrt(2.0 / math.pi) * np.exp(-0.5 * z**2) + mean * (
        1.0 - 2.0 * stats.norm.cdf(-z)
    )


def _mean_abs_scaled_chi2_minus_one(scale, dof: int):
    """E|scale * Y / dof - 1| for Y ~ chi^2_dof, from E|Y - k| = (dof - k) + 2 (k F_dof(k) -
    dof F_{dof+2}(k)) with k = dof / scale."""
    scale = np.asarray(scale, dtype=np.float64)
    out = np.ones_like(scale)  # scale = 0: |0 - 1| = 1
    positive = scale > 0
    k = dof / scale[positive]
    deviation = (dof - k) + 2.0 * (k * stats.chi2.cdf(k, dof) - dof * stats.chi2.cdf(k, dof + 2))
    out[positive] = scale[positive] / dof * deviation
    return out


def expected_closeness(
    reading: str, alpha_bar, num_pixels: int, batch_size: int, pixel_variance: float = 0.0
) -> np.ndarray:
    """E[mean |C - I|] of ``reading`` for n = ``batch_size`` copies of an image of D =
    ``num_pixels`` pixels with pixel variance s^2 = ``pixel_variance`` (x0c . x0c / (D - 1)),
    noised to ``alpha_bar`` (one value or an array). See the module docstring."""
    a = np.asarray(alpha_bar, dtype=np.float64)
    D, n = int(num_pixels), int(batch_size)
    if reading == "copies":
        s2 = float(pixel_variance)
        mixed = a * (1.0 - a) * s2
        off = _mean_abs_normal(a * s2, np.sqrt(((1.0 - a) ** 2 + 2.0 * mixed) / (D - 1)))
        diagonal = _mean_abs_normal(
            a * (s2 - 1.0), np.sqrt((2.0 * (1.0 - a) ** 2 + 4.0 * mixed) / (D - 1))
        )
        return (n - 1) / n * off + diagonal / n
    if reading == "pixels":
        m = n - 1
        mean_abs_entry = (
            math.sqrt(2.0 / math.pi)
            * math.sqrt(2.0)
            * math.exp(special.gammaln((m + 1) / 2) - special.gammaln(m / 2))
            / m
        )
        off = (1.0 - a) * mean_abs_entry
        return (D - 1) / D * off + _mean_abs_scaled_chi2_minus_one(1.0 - a, m) / D
    raise ConfigError(f"reading must be one of {READINGS}, got {reading!r}")


def closeness_sd(
    reading: str,
    alpha_bar,
    noise_sd: float,
    num_pixels: int,
    batch_size: int,
    pixel_variance: float = 0.0,
) -> np.ndarray:
    """The sd of a reading at ``alpha_bar`` over noise draws, from ``noise_sd`` (its sd at
    alpha_bar = 0, over the pure-noise repeats).

    Pixels: C = (1 - alpha_bar) S, so (1 - alpha_bar) noise_sd. Copies: the noise-noise part
    scales with (1 - alpha_bar), and the image adds the cross term sqrt(a (1 - a)) (u_i + u_j):
    a shift of row and column i by the image's projection u_i on copy i's noise (variance
    s^2 / (D - 1), independent between copies). Its effect on the mean |C - I| is linear
    with slope g = 1 - 2 Phi(-mean / sd) for each entry, which gives the variance
    4 a (1 - a) s^2 / (n (D - 1)) ((n - 1) / n g_off + g_diag / n)^2.
    """
    a = np.asarray(alpha_bar, dtype=np.float64)
    if reading == "pixels":
        return (1.0 - a) * noise_sd
    if reading != "copies":
        raise ConfigError(f"reading must be one of {READINGS}, got {reading!r}")
    D, n, s2 = int(num_pixels), int(batch_size), float(pixel_variance)
    mixed = a * (1.0 - a) * s2
    slope_off = 1.0 - 2.0 * stats.norm.cdf(-a * s2 / np.sqrt(((1 - a) ** 2 + 2 * mixed) / (D - 1)))
    slope_diag = 1.0 - 2.0 * stats.norm.cdf(
        -a * (s2 - 1.0) / np.sqrt((2 * (1 - a) ** 2 + 4 * mixed) / (D - 1))
    )
    cross = 4.0 * mixed / (n * (D - 1)) * ((n - 1) / n * slope_off + slope_diag / n) ** 2
    return np.sqrt(((1.0 - a) * noise_sd) ** 2 + cross)


def crossing_alpha_bar(
    reading: str, band_edge: float, num_pixels: int, batch_size: int, pixel_variance: float = 0.0
) -> float:
    """The alpha_bar at which the expected reading meets ``band_edge`` (NaN if it never does)."""

    def gap(a: float) -> float:
        return float(expected_closeness(reading, a, num_pixels, batch_size, pixel_variance)) - (
            band_edge
        )

    low, high = 0.0, 1.0 - 1e-12
    if not np.isfinite(band_edge) or gap(low) * gap(high) > 0:
        return math.nan
    return float(optimize.brentq(gap, low, high, xtol=1e-15, rtol=1e-12))


def first_passage(
    expected: np.ndarray,
    sd: np.ndarray,
    low: float,
    high: float,
    quantiles: Sequence[float] = PASSAGE_QUANTILES,
) -> list[float]:
    """The steps (1-based) by which a curve E_t + N(0, sd_t^2), fresh at every t, has entered
    [low, high] with probability q, for each q of ``quantiles`` (NaN if it never does)."""
    expected, sd = np.asarray(expected, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    inside = stats.norm.cdf((high - expected) / sd) - stats.norm.cdf((low - expected) / sd)
    not_yet = np.cumprod(1.0 - inside)
    steps = []
    for q in quantiles:
        reached = np.flatnonzero(not_yet <= 1.0 - q)
        steps.append(float(reached[0] + 1) if reached.size else math.nan)
    return steps


# --- the table's predictions ---------------------------------------------------------------
_KEYS = ["photo", "schedule", "T", "image_size"]


def _level(reading: str, row: pd.Series) -> float:
    """The band-entry level of one (image, size) as alpha_bar."""
    edge = (
        row[f"noise_band_high_{reading}"]
        if reading == "copies"
        else row[f"noise_band_low_{reading}"]
    )
    return crossing_alpha_bar(
        reading, edge, row["num_pixels"], row["batch_size"], row["pixel_variance"]
    )


def _predict_group(group: pd.DataFrame, reading: str) -> dict:
    """The predicted entry of one curve (one schedule, image and size), over t = 1..T."""
    first = group.iloc[0]
    alpha_bar = group["alpha_bar"].to_numpy()
    level = _level(reading, first)
    out = {f"predicted_log_snr_level_{reading}": float(logit(level))}
    if not group[f"closeness_{reading}"].notna().any():
        keys = ("t_enter", "t_enter_low", "t_enter_high", "log_snr_enter")
        return out | {f"predicted_{key}_{reading}": math.nan for key in keys}
    expected = expected_closeness(
        reading, alpha_bar, first["num_pixels"], first["batch_size"], first["pixel_variance"]
    )
    sd = closeness_sd(
        reading,
        alpha_bar,
        first[f"noise_sd_{reading}"],
        first["num_pixels"],
        first["batch_size"],
        first["pixel_variance"],
    )
    low, median, high = first_passage(
        expected, sd, first[f"noise_band_low_{reading}"], first[f"noise_band_high_{reading}"]
    )
    t = group["t"].to_numpy()
    log_snr = logit(alpha_bar)

    def at(step: float) -> float:
        return float(log_snr[t == step][0]) if not math.isnan(step) else math.nan

    return out | {
        f"predicted_t_enter_{reading}": median,
        f"predicted_t_enter_low_{reading}": low,
        f"predicted_t_enter_high_{reading}": high,
        f"predicted_log_snr_enter_{reading}": at(median),
        f"predicted_log_snr_enter_low_{reading}": at(low),
        f"predicted_log_snr_enter_high_{reading}": at(high),
    }


def _measured(group: pd.DataFrame, t_enter: float, reading: str) -> dict:
    """The measured entry's log-SNR and the log-SNR step there (the step resolution)."""
    t, log_snr = group["t"].to_numpy(), logit(group["alpha_bar"].to_numpy())
    if math.isnan(t_enter):
        return {f"log_snr_enter_{reading}": math.nan, f"log_snr_step_{reading}": math.nan}
    index = int(np.flatnonzero(t == t_enter)[0])
    before = log_snr[index - 1] if index > 0 else math.inf
    return {
        f"log_snr_enter_{reading}": float(log_snr[index]),
        f"log_snr_step_{reading}": float(abs(before - log_snr[index])),
    }


def _verdict(row: dict, reading: str) -> dict:
    """Pass when the measured step lies in the predicted interval, one step of slack each side;
    otherwise how far outside, in steps and in log-SNR."""
    t = row.get(f"t_enter_{reading}", math.nan)
    low = row[f"predicted_t_enter_low_{reading}"]
    high = row[f"predicted_t_enter_high_{reading}"]
    if any(math.isnan(v) for v in (t, low, high)):
        return {f"predicted_pass_{reading}": None, f"predicted_miss_steps_{reading}": math.nan}
    miss = max(low - 1 - t, t - high - 1, 0.0)
    return {f"predicted_pass_{reading}": bool(miss == 0), f"predicted_miss_steps_{reading}": miss}


def predict_band_entry(table: pd.DataFrame, closest: pd.DataFrame) -> pd.DataFrame:
    """``closest`` (:func:`~ddpm.analysis.closest_points` of ``table``) with, for each reading,
    the measured entry in log-SNR terms and the prediction next to it.

    Added per reading r: ``log_snr_enter_r`` (measured), ``log_snr_step_r`` (the log-SNR
    change over the step before it: the step resolution), ``predicted_log_snr_level_r`` (the
    level, schedule-free), ``predicted_t_enter_r`` with ``_low_r`` / ``_high_r`` (median and
    95 % interval of the first passage), ``predicted_log_snr_enter_r`` (and ``_low``,
    ``_high``), ``predicted_pass_r``, ``predicted_miss_steps_r`` (steps outside the interval
    with its slack; 0 when it passes), ``predicted_shift_from_smallest_r`` (the level at this
    size minus the level at the smallest size: the log-SNR shift that keeps band entry where it
    is for the smallest size) and ``predicted_slope_per_doubling_r`` (the OLS slope of the level
    over log2 of the image side, per photo).
    """
    needed = {"pixel_variance", "noise_sd_copies", "noise_sd_pixels", "alpha_bar", "t"}
    missing = sorted(needed - set(table.columns))
    if missing:
        raise ConfigError(f"the closeness table lacks {missing}; write it again with the analysis")
    groups = {key: group.sort_values("t") for key, group in table[table["t"] >= 1].groupby(_KEYS)}
    rows = []
    for record in closest.to_dict("records"):
        group = groups[tuple(record[k] for k in _KEYS)]
        for reading in READINGS:
            record |= _measured(group, record[f"t_enter_{reading}"], reading)
            record |= _predict_group(group, reading)
            record |= _verdict(record, reading)
        rows.append(record)
    return _add_shifts(pd.DataFrame(rows))


def _add_shifts(frame: pd.DataFrame) -> pd.DataFrame:
    for reading in READINGS:
        level = f"predicted_log_snr_level_{reading}"
        smallest = frame.loc[frame.groupby("photo")["image_size"].transform("idxmin"), level]
        frame[f"predicted_shift_from_smallest_{reading}"] = frame[level] - smallest.to_numpy()
        slopes = {}
        for photo, part in frame.drop_duplicates(["photo", "image_size"]).groupby("photo"):
            x, y = np.log2(part["image_size"].to_numpy(float)), part[level].to_numpy()
            keep = np.isfinite(y)
            slopes[photo] = (
                float(np.polyfit(x[keep], y[keep], 1)[0]) if keep.sum() >= 2 else math.nan
            )
        frame[f"predicted_slope_per_doubling_{reading}"] = frame["photo"].map(slopes)
    return frame


# --- the collapse ----------------------------------------------------------------------------
def collapse_verdicts(closest: pd.DataFrame) -> pd.DataFrame:
    """Do the schedules enter the band at one log-SNR? One row per (photo, image size, reading).

    ``spread_log_snr``: the largest minus the smallest measured entry log-SNR over the
    schedules; ``spread_t_over_T``: the same for the entry step as a fraction of T (what the
    thesis's plot against t shows). The claim holds when the log-SNR spread is at most
    ``tolerance``: the widest predicted 95 % interval of an entry (in log-SNR) plus the
    largest step resolution, i.e. what the band's own noise and the step grid allow two
    schedules with the same curve to differ by (``collapses``).
    """
    rows = []
    for (photo, size), part in closest.groupby(["photo", "image_size"], sort=False):
        for reading in READINGS:
            measured = part[f"log_snr_enter_{reading}"].to_numpy(float)
            if not np.isfinite(measured).all():
                continue
            widths = (
                part[f"predicted_log_snr_enter_low_{reading}"]
                - part[f"predicted_log_snr_enter_high_{reading}"]
            ).to_numpy(float)
            tolerance = float(np.nanmax(widths) + part[f"log_snr_step_{reading}"].max())
            spread = float(measured.max() - measured.min())
            fractions = (part[f"t_enter_{reading}"] / part["T"]).to_numpy(float)
            rows.append(
                {
                    "photo": photo,
                    "image_size": int(size),
                    "reading": reading,
                    "schedules": len(part),
                    "log_snr_enter_min": float(measured.min()),
                    "log_snr_enter_max": float(measured.max()),
                    "spread_log_snr": spread,
                    "tolerance_log_snr": tolerance,
                    "spread_t_over_T": float(fractions.max() - fractions.min()),
                    "collapses": bool(spread <= tolerance),
                }
            )
    return pd.DataFrame(rows)
