"""The thesis's findings on closeness to noise (section 5.1), and ours next to them.

:func:`closest_points` finds when each closeness curve enters the pure-noise band;
:func:`compare_with_thesis` sets those steps against the thesis's statements.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from .. import ConfigError

__all__ = ["THESIS_CLAIMS", "closest_points", "compare_with_thesis", "explain_closeness_readings"]

# The thesis's statements about figure 5.2 (section 5.1).
THESIS_CLAIMS = {
    "linear_small": 600,  # "closest point to pure noise already after around 600 steps for small images"
    "linear_large": 700,  # "... and after around 700 for larger images"
    "cosine_at_least": 850,  # cosine "still capable providing value for at least 850 timesteps"
}


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
        raise ConfigError(f"smooth_window must be >= 1, got {smooth_window}")
    keys = ["photo", "schedule", "T", "image_size"]
    missing = sorted(
        set(keys + ["t", "num_pixels", "alpha_bar", "kl_bits_per_dim"]) - set(table.columns)
    )
    if missing:
        raise ConfigError(f"the table lacks columns {missing}; pass the output of closeness_table")
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
        raise ConfigError(f"reading must be 'copies' or 'pixels', got {reading!r}")
    name = f"{column}_{reading}"
    if name not in closest.columns:
        raise ConfigError(f"closest has no column {name!r}; pass the output of closest_points")
    present = set(closest["schedule"])
    if not {"linear", "cosine"} <= present:
        raise ConfigError(
            f"the thesis compares the 'linear' and 'cosine' schedules; the table has {sorted(present)}"
        )
    photo = closest["photo"].iloc[0]
    part = closest[closest["photo"] == photo]
    sizes = [int(size) for size in sorted(part["image_size"].unique())]

    def ours(schedule: str, size: int) -> float:
        hit = part[(part["schedule"] == schedule) & (part["image_size"] == size)][name]
        return float(hit.iloc[0]) if len(hit) else math.nan

    rows = [
        *_around_claims(ours, sizes[0], sizes[-1]),
        *_cosine_claims(ours, sizes),
        *_direction_claims(ours, sizes, sorted(present)),
    ]
    table = pd.DataFrame(rows)
    table.insert(0, "definition", name)
    return table


def _size_label(size: int) -> str:
    return f"{size}x{size}"


def _around_claims(ours: Callable[[str, int], float], small: int, large: int) -> list[dict]:
    """The two "around n steps" claims on linear; ours agrees within 15 % of the thesis."""
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
                "detail": f"ours at {_size_label(size)}: {value:g} ({value - thesis:+g} steps)",
            }
        )
    return rows


def _cosine_claims(ours: Callable[[str, int], float], sizes: list[int]) -> list[dict]:
    """Cosine stays short of noise for at least 850 steps, at every size."""
    rows = []
    for size in sizes:
        value = ours("cosine", size)
        rows.append(
            {
                "claim": "cosine: still short of noise for at least 850 steps",
                "thesis_t": THESIS_CLAIMS["cosine_at_least"],
                "ours_t": value,
                "agrees": bool(value >= THESIS_CLAIMS["cosine_at_least"]),
                "detail": f"ours at {_size_label(size)}: {value:g}",
            }
        )
    return rows


def _direction_claims(
    ours: Callable[[str, int], float], sizes: list[int], schedules: list[str]
) -> list[dict]:
    """Linear before cosine at every size; small before large images for every schedule."""
    rows = []
    for size in sizes:
        lin, cos = ours("linear", size), ours("cosine", size)
        rows.append(
            {
                "claim": "direction: linear reaches noise earlier than cosine",
                "thesis_t": math.nan,
                "ours_t": lin,
                "agrees": bool(lin < cos),
                "detail": f"{_size_label(size)}: linear {lin:g} vs cosine {cos:g}",
            }
        )
    small, large = sizes[0], sizes[-1]
    for schedule in schedules:
        first, last = ours(schedule, small), ours(schedule, large)
        rows.append(
            {
                "claim": f"direction: small images reach noise earlier than large ({schedule})",
                "thesis_t": math.nan,
                "ours_t": first,
                "agrees": bool(first < last),
                "detail": f"{schedule}: {_size_label(small)} {first:g} vs "
                f"{_size_label(large)} {last:g}",
            }
        )
    return rows


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
