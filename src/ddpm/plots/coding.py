"""Figures of seed 004's experiments on trained models: progressive coding (rate against
distortion along the reverse process, Ho et al. fig. 5) and interpolation through x_t (fig. 9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats as scipy_stats

from .metrics import _schedules_in_order
from .runs import _show
from .style import SCHEDULE_PALETTE, use_style

__all__ = [
    "draw_interpolation",
    "draw_rate_distortion",
    "plot_interpolation",
    "plot_rate_distortion",
]


def _line_colours(schedules: Sequence[str]) -> dict[str, str]:
    """The study's colour of each known schedule; distinct colours for other labels (the
    prediction study's cosine_eps, cosine_x0, ... must be told apart, not drawn in greys)."""
    others = [name for name in schedules if name not in SCHEDULE_PALETTE]
    spare = [c for c in sns.color_palette("tab10").as_hex() if c not in SCHEDULE_PALETTE.values()]
    extra = dict(zip(others, spare * (len(others) // len(spare) + 1), strict=False))
    return {name: SCHEDULE_PALETTE.get(name, extra.get(name)) for name in schedules}


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
    schedules = _schedules_in_order(cells["schedule"])
    colours = _line_colours(schedules)
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


def plot_interpolation(series: Mapping[str, np.ndarray], title: str) -> plt.Figure:
    """Ho et al. fig. 9: one row per t, the two source images at the ends and the decoded
    mixtures for each lambda between them."""
    use_style()
    steps, lambdas, images = series["t"], series["lambdas"], series["images"]
    sources = series["sources"]
    n_cols = len(lambdas) + 2
    fig, axes = plt.subplots(
        len(steps), n_cols, figsize=(1.05 * n_cols, 1.25 * len(steps) + 0.5), squeeze=False
    )
    for i, t in enumerate(steps):
        _show(axes[i][0], sources[0:1])
        _show(axes[i][-1], sources[1:2])
        axes[i][0].set_ylabel(f"t = {int(t)}", fontsize=9)
        for j, lam in enumerate(lambdas):
            _show(axes[i][j + 1], images[i][j : j + 1])
            if i == 0:
                axes[i][j + 1].set_title(f"λ = {lam:.3g}", fontsize=8)
    axes[0][0].set_title("source a", fontsize=8)
    axes[0][-1].set_title("source b", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def draw_interpolation(interpolation: str) -> plt.Figure:
    """:func:`plot_interpolation` of what :func:`ddpm.interpolation.best_cell_interpolation`
    wrote."""
    from ..interpolation import load_interpolation

    series = load_interpolation(interpolation)
    schedule, T, seed = (str(v) for v in series["cell"])
    return plot_interpolation(
        series, f"Interpolation through x_t, best cell: {schedule}, T = {T}, seed {seed}"
    )
