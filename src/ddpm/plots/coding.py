"""Progressive coding (seed 004, Ho et al. fig. 5): rate against distortion along the reverse
process."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from .style import schedule_colours, schedules_in_order, use_style

__all__ = ["draw_rate_distortion", "plot_rate_distortion"]


def _over_seeds(tables: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (schedule, T, t): the mean of ``column`` over seeds and its 95 % t-interval."""
    grouped = tables.groupby(["schedule", "T", "t"])[column]
    summary = grouped.agg(["mean", "std", "count"]).reset_index()
    n = summary["count"].to_numpy(dtype=float)
    factor = np.where(n > 1, scipy_stats.t.ppf(0.975, np.maximum(n - 1, 1)) / np.sqrt(n), np.nan)
    half = summary["std"].to_numpy(dtype=float) * factor
    return summary.assign(lo=summary["mean"] - half, hi=summary["mean"] + half)


def plot_rate_distortion(tables: pd.DataFrame) -> plt.Figure:
    """Ho et al. fig. 5 per schedule: distortion against rate, and rate and distortion against
    the reverse steps done, (T - t) / T; one line per schedule (and T), the mean over seeds with
    its 95 % t-interval as a band. ``tables`` stacks :func:`ddpm.coding.rate_distortion` tables.
    """
    use_style()
    rate = _over_seeds(tables, "rate_bits_per_dim")
    distortion = _over_seeds(tables, "distortion_rmse")
    cells = rate[["schedule", "T"]].drop_duplicates()
    schedules = schedules_in_order(cells["schedule"])
    colours = schedule_colours(schedules)
    several_T = cells["T"].nunique() > 1
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8))
    for schedule in schedules:
        for T in sorted(cells.loc[cells["schedule"] == schedule, "T"]):

            def line(frame, schedule=schedule, T=T):
                part = frame[(frame["schedule"] == schedule) & (frame["T"] == T)]
                return part.sort_values("t", ascending=False)

            r, d = line(rate), line(distortion)
            steps = (T - r["t"].to_numpy()) / T
            label = f"{schedule} (T = {T})" if several_T else f"{schedule}, T = {T}"
            style = {"color": colours[schedule], "lw": 1.4}
            axes[0].plot(r["mean"], d["mean"], label=label, **style)
            for ax, frame in ((axes[1], r), (axes[2], d)):
                ax.plot(steps, frame["mean"], **style)
                ax.fill_between(steps, frame["lo"], frame["hi"], color=colours[schedule], alpha=0.2)
    axes[0].set_xlabel("rate (bits/dim), cumulative")
    axes[0].set_ylabel("distortion (RMSE, [0, 255])")
    axes[0].set_title("distortion against rate")
    axes[1].set_ylabel("rate (bits/dim), cumulative")
    axes[1].set_title("rate against reverse steps")
    axes[2].set_ylabel("distortion (RMSE, [0, 255])")
    axes[2].set_title("distortion against reverse steps")
    for ax in axes[1:]:
        ax.set_xlabel("reverse steps done, (T − t) / T")
    axes[0].legend(fontsize=8)
    fig.suptitle("Progressive coding: rate and distortion along the reverse process (test images)")
    fig.tight_layout()
    return fig


def draw_rate_distortion(runs: Sequence[str]) -> plt.Figure:
    """:func:`plot_rate_distortion` of every run's ``coding.csv``."""
    from ..coding import read_coding_tables

    return plot_rate_distortion(read_coding_tables(runs))
