"""The closeness curves of thesis figure 5.2 against the log-SNR instead of t.

Plotted against log-SNR = logit(alpha_bar_t), the curves of every schedule fall onto one curve
per image and size (:mod:`ddpm.analysis.band_entry`): the schedule only decides at which step
a log-SNR is reached.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import ConfigError
from ..analysis.band_entry import crossing_alpha_bar, logit
from ..analysis.thesis import closest_points
from .style import SCHEDULE_PALETTE, use_style

__all__ = ["draw_closeness_vs_log_snr", "plot_closeness_vs_log_snr"]

# The log-SNR range shown: from nearly the image (e^6 = 400 times more signal than noise) to
# nearly pure noise; every band entry of the study lies well inside.
LOG_SNR_RANGE = (6.0, -8.0)


def _rows(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(photo, reading) per row of panels: the copies reading of every image, then the pixels
    reading once (it never sees the image, so every image gives the same curves)."""
    photos = list(dict.fromkeys(table["photo"]))
    rows = [
        (photo, "copies")
        for photo in photos
        if table.loc[table["photo"] == photo, "closeness_copies"].notna().any()
    ]
    if table.loc[table["photo"] == photos[0], "closeness_pixels"].notna().any():
        rows.append((photos[0], "pixels"))
    return rows


def plot_closeness_vs_log_snr(closeness_table: pd.DataFrame) -> plt.Figure:
    """Mean |C - I| against log-SNR: one column per image size, one row per image (copies
    reading) and one for the pixels reading; one line per schedule, the pure-noise band shaded,
    each schedule's band entry marked, and the predicted level (where the expected reading
    meets the band's edge) as a dashed line."""
    needed = ["photo", "schedule", "image_size", "t", "alpha_bar", "pixel_variance", "num_pixels"]
    missing = sorted(set(needed) - set(closeness_table.columns))
    if missing:
        raise ConfigError(f"the closeness table lacks {missing}; write it again with the analysis")
    table = closeness_table[closeness_table["t"] >= 1]
    rows = _rows(table)
    if not rows:
        raise ConfigError("the closeness table holds no closeness values to draw")
    sizes = sorted(table["image_size"].unique())
    closest = closest_points(table).set_index(["photo", "schedule", "image_size"])
    use_style()
    fig, axes = plt.subplots(
        len(rows), len(sizes), figsize=(3.3 * len(sizes), 2.6 * len(rows)), squeeze=False
    )
    for row, (photo, reading) in zip(axes, rows, strict=True):
        for ax, size in zip(row, sizes, strict=True):
            part = table[(table["photo"] == photo) & (table["image_size"] == size)]
            _panel(ax, part, reading, closest.loc[photo])
            title = f"{photo}, {size}x{size}" if reading == "copies" else f"pixels, {size}x{size}"
            ax.set_title(title, fontsize=9)
        row[0].set_ylabel(f"mean |C - I| ({reading})")
    for ax in axes[-1]:
        ax.set_xlabel(r"log-SNR  $\log(\bar\alpha_t / (1 - \bar\alpha_t))$")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    axes[0][-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.suptitle("Closeness to isotropic noise against log-SNR: one curve per image and size")
    fig.tight_layout()
    return fig


def _panel(ax, part: pd.DataFrame, reading: str, closest: pd.DataFrame) -> None:
    """One image and size in one reading: every schedule, the band, entries, the level."""
    value, low, high = (
        f"{p}_{reading}" for p in ("closeness", "noise_band_low", "noise_band_high")
    )
    first = part.iloc[0]
    ax.axhspan(first[low], first[high], color="0.6", alpha=0.3, lw=0)
    for schedule, rows in part.groupby("schedule", sort=False):
        rows = rows.sort_values("t")
        color = SCHEDULE_PALETTE.get(schedule) or SCHEDULE_PALETTE.get(
            rows["beta_schedule"].iloc[0]
        )
        x = logit(rows["alpha_bar"].to_numpy())
        ax.plot(x, rows[value], color=color, lw=0.8, label=schedule)
        t_enter = closest.loc[(schedule, int(first["image_size"])), f"t_enter_{reading}"]
        if not math.isnan(t_enter):
            at = rows[rows["t"] == t_enter]
            ax.plot(logit(at["alpha_bar"]), at[value], "o", color=color, ms=4, mec="black", mew=0.5)
    edge = first[high] if reading == "copies" else first[low]
    level = crossing_alpha_bar(
        reading, edge, first["num_pixels"], first["batch_size"], first["pixel_variance"]
    )
    if not math.isnan(level):
        ax.axvline(float(logit(level)), color="black", lw=0.8, ls="--")
    ax.set(xlim=LOG_SNR_RANGE, yscale="log")
    ax.tick_params(labelsize=8)
    finite = part[value][np.isfinite(part[value])]
    if not finite.empty:
        ax.set_ylim(min(finite.min(), first[low]) * 0.8, finite.max() * 1.2)


def draw_closeness_vs_log_snr(closeness: str) -> plt.Figure:
    """:func:`plot_closeness_vs_log_snr` of the closeness table."""
    return plot_closeness_vs_log_snr(pd.read_csv(closeness))
