"""Uncertainty of the study's numbers: over seeds (training) and over samples (measurement).

Two sources of spread are kept apart so that a reader can tell them from each other:

- **between seeds**: each seed is a separately trained model; :func:`t_interval` gives the mean
  over seeds with a 95 % Student-t interval (n = number of seeds);
- **within a run**: a run is scored on a finite number of generated images;
  :func:`ddpm.evaluation.spread.bootstrap_sample_metrics` resamples those images (their features,
  extracted once) with replacement and recomputes FID, KID and IS with torch-fidelity's own
  feature -> metric functions, so the spread is that of the metric itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

__all__ = [
    "CONFIDENCE",
    "ols_slope",
    "spearman_with_bootstrap",
    "t_interval",
    "welch_difference",
]

CONFIDENCE = 0.95
"""Every interval of the study is a 95 % interval."""


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
    """Mean of ``values`` with its Student-t interval (kind ``"t"``, n - 1 degrees of freedom).

    NaNs are dropped. With fewer than two values the interval is NaN: one seed says nothing about
    the spread between seeds.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    sd = float(values.std(ddof=1)) if n > 1 else math.nan
    half = (
        float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))
        if n > 1
        else math.nan
    )
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half, "half": half}


def welch_difference(a: Sequence[float], b: Sequence[float], confidence=CONFIDENCE) -> dict:
    """mean(a) - mean(b) with a Welch t interval (unequal variances, Welch-Satterthwaite df)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "lo": math.nan, "hi": math.nan, "n_a": len(a), "n_b": len(b)}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "lo": diff, "hi": diff, "n_a": len(a), "n_b": len(b)}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, df) * se)
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "n_a": len(a), "n_b": len(b)}


def ols_slope(x: Sequence[float], y: Sequence[float], confidence=CONFIDENCE) -> dict:
    """Least-squares slope of ``y`` on ``x`` with its t interval (n - 2 degrees of freedom)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return {"slope": math.nan, "lo": math.nan, "hi": math.nan, "n": n}
    fit = scipy_stats.linregress(x, y)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 2) * fit.stderr)
    return {"slope": float(fit.slope), "lo": fit.slope - half, "hi": fit.slope + half, "n": n}


def spearman_with_bootstrap(
    x: Sequence[float], y: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> dict:
    """Spearman's rho of paired values with a percentile bootstrap interval over the pairs."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": math.nan, "lo": math.nan, "hi": math.nan, "n": n}
    rho = float(scipy_stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    # Spearman's rho is Pearson's correlation of the ranks (ties get their mean rank).
    rank_x = scipy_stats.rankdata(x[draws], axis=1)
    rank_y = scipy_stats.rankdata(y[draws], axis=1)
    rank_x -= rank_x.mean(axis=1, keepdims=True)
    rank_y -= rank_y.mean(axis=1, keepdims=True)
    norm = np.sqrt((rank_x**2).sum(axis=1) * (rank_y**2).sum(axis=1))
    defined = norm > 0  # a resample of one repeated pair has no correlation
    rhos = (rank_x * rank_y).sum(axis=1)[defined] / norm[defined]
    lo, hi = np.quantile(rhos, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return {"rho": rho, "lo": float(lo), "hi": float(hi), "n": n}
