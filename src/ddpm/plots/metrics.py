"""Figures and tables of sample quality over the schedule x T grid.

Every function reads the tidy table of runs (one row per trained model) with the columns
``dataset``, ``schedule``, ``T``, ``seed``, ``final_loss`` and metric columns such as
``classifier_fid`` or ``inception_is_mean`` (see :func:`ddpm.evaluation.compute_metrics`). The
spread over seeds is the sample standard deviation (ddof = 1). A metric column that is missing or
all NaN (the metric was not computed, e.g. Inception without weights) gives a labelled empty panel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm
from matplotlib.ticker import NullLocator
from scipy.stats import spearmanr

from .style import SCHEDULE_PALETTE

__all__ = [
    "metric_figure",
    "metric_label",
    "metrics_summary_table",
    "plot_loss_vs_metric",
    "plot_metric_vs_T",
]

_RUN_COLUMNS = ("dataset", "schedule", "T", "seed")

_SUFFIX_NAMES = {
    "is_mean": ("IS", "higher is better"),
    "is_std": ("IS spread over splits", None),
    "fid": ("FID", "lower is better"),
    "kid_mean": ("KID", "lower is better"),
    "kid_std": ("KID spread over subsets", None),
    "precision": ("precision", "higher is better"),
    "recall": ("recall", "higher is better"),
    "f_score": ("F-score of precision and recall", "higher is better"),
}


def metric_label(metric: str) -> str:
    """Axis label of a metric column: ``"classifier_fid"`` -> ``"FID, classifier features
    (lower is better)"``; unknown names are returned as they are."""
    extractor, _, suffix = metric.partition("_")
    if suffix not in _SUFFIX_NAMES:
        return metric.replace("_", " ")
    name, direction = _SUFFIX_NAMES[suffix]
    label = f"{name}, {extractor} features"
    return f"{label} ({direction})" if direction else label


def _check_runs(runs: pd.DataFrame, extra: Sequence[str] = ()) -> None:
    missing = [column for column in (*_RUN_COLUMNS, *extra) if column not in runs.columns]
    if missing:
        raise ValueError(
            f"the runs table lacks the column(s) {missing}; it needs one row per run with "
            f"{list(_RUN_COLUMNS)} and the metric columns"
        )


def _has_values(runs: pd.DataFrame, column: str) -> bool:
    return column in runs.columns and runs[column].notna().any()


def _schedules_in_order(schedules) -> list[str]:
    """Known schedules in the palette's order, then any others alphabetically."""
    present = set(schedules)
    known = [name for name in SCHEDULE_PALETTE if name in present]
    return known + sorted(present - set(known))


def _schedule_colours(schedules: Sequence[str]) -> dict[str, str]:
    others = [name for name in schedules if name not in SCHEDULE_PALETTE]
    extra = dict(zip(others, sns.color_palette("Greys_r", len(others) + 2).as_hex(), strict=False))
    return {name: SCHEDULE_PALETTE.get(name, extra.get(name)) for name in schedules}


def _datasets(runs: pd.DataFrame) -> list:
    return sorted(runs["dataset"].dropna().unique().tolist()) or [None]


def _panels(n: int, width: float = 4.4, height: float = 3.4):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def _empty_panel(ax: plt.Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _not_computed(column: str) -> str:
    return f"{metric_label(column)}\nnot computed (no values in column {column!r})"


def _floor_for(floor, dataset) -> list[float]:
    """The floor values that apply to ``dataset``: a number, a sequence of numbers (repeated
    draws) or a mapping from dataset to either."""
    if floor is None:
        return []
    if isinstance(floor, Mapping):
        floor = floor.get(dataset)
        if floor is None:
            return []
    values = [float(floor)] if np.isscalar(floor) else [float(v) for v in floor]
    return [v for v in values if math.isfinite(v)]


def _draw_floor(ax: plt.Axes, values: list[float]) -> None:
    if not values:
        return
    if len(values) > 1 and max(values) > min(values):
        ax.axhspan(min(values), max(values), color="0.5", alpha=0.15, lw=0)
    ax.axhline(float(np.mean(values)), color="0.3", ls="--", lw=1.2, label="real data (floor)")


def plot_metric_vs_T(runs: pd.DataFrame, metric: str, floor=None) -> plt.Figure:
    """``metric`` against the number of diffusion steps T, one line per schedule.

    Points are the mean over seeds with the standard deviation as error bars (none for a single
    seed); the schedules are shifted a little along x so their bars do not overlap. T is on a log2
    axis. One panel per dataset.

    Args:
        runs: the tidy table of runs.
        metric: the metric column, e.g. ``"classifier_fid"``.
        floor: the same metric between two real sets of the generated sets' size
            (:func:`ddpm.evaluation.real_floor`): a number (drawn as a dashed line), several numbers
            from repeated draws (their range as a band, their mean as the line), or a mapping from
            dataset to either.
    """
    _check_runs(runs)
    datasets = _datasets(runs)
    fig, axes = _panels(len(datasets))
    for ax, dataset in zip(axes, datasets, strict=True):
        data = runs if dataset is None else runs[runs["dataset"] == dataset]
        if len(datasets) > 1:
            ax.set_title(str(dataset))
        if not _has_values(data, metric):
            _empty_panel(ax, _not_computed(metric))
            continue
        data = data[data[metric].notna()]
        stats = (
            data.groupby(["schedule", "T"])[metric]
            .agg(["mean", "std"])
            .reset_index()
            .sort_values("T")
        )
        seeds = data.groupby("schedule")["seed"].nunique()
        schedules = _schedules_in_order(stats["schedule"])
        colours = _schedule_colours(schedules)
        for i, schedule in enumerate(schedules):
            rows = stats[stats["schedule"] == schedule]
            shift = 2.0 ** (0.04 * (i - (len(schedules) - 1) / 2))
            n_seeds = int(seeds[schedule])
            ax.errorbar(
                rows["T"].to_numpy(dtype=float) * shift,
                rows["mean"].to_numpy(dtype=float),
                yerr=rows["std"].fillna(0.0).to_numpy(dtype=float),
                color=colours[schedule],
                marker="o",
                ms=4,
                capsize=3,
                label=f"{schedule} ({n_seeds} seed{'s' if n_seeds != 1 else ''})",
            )
        _draw_floor(ax, _floor_for(floor, dataset))
        ax.set_xscale("log", base=2)
        t_values = sorted(stats["T"].unique())
        ax.set_xticks(t_values, [str(int(t)) for t in t_values])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("diffusion steps T")
        ax.set_ylabel(metric_label(metric))
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _spearman_text(x: pd.Series, y: pd.Series) -> str:
    n = len(x)
    if n < 3:
        return f"too few runs for a rank correlation (n = {n})"
    if x.nunique() < 2 or y.nunique() < 2:
        return f"rank correlation undefined: constant values (n = {n})"
    rho, p_value = spearmanr(x, y)
    return f"Spearman ρ = {rho:.2f} (p = {p_value:.2g}, n = {n})"


def plot_loss_vs_metric(runs: pd.DataFrame, metric: str = "classifier_fid") -> plt.Figure:
    """Final training loss against ``metric`` for every run of the grid, coloured by schedule and
    sized by T, with the Spearman rank correlation over all runs of a dataset in the panel title.

    It tests the claim (report 003) that a lower loss does not mean better samples: a correlation
    near zero, or a negative one for FID, says the loss cannot be used to pick a model.
    """
    _check_runs(runs, extra=["final_loss"])
    datasets = _datasets(runs)
    fig, axes = _panels(len(datasets), width=4.8)
    for ax, dataset in zip(axes, datasets, strict=True):
        data = runs if dataset is None else runs[runs["dataset"] == dataset]
        prefix = "" if len(datasets) == 1 else f"{dataset}: "
        if not _has_values(data, metric) or not data["final_loss"].notna().any():
            missing = metric if not _has_values(data, metric) else "final_loss"
            if prefix:
                ax.set_title(prefix.rstrip(": "))
            _empty_panel(ax, _not_computed(missing))
            continue
        data = data[data[metric].notna() & data["final_loss"].notna()]
        schedules = _schedules_in_order(data["schedule"])
        sns.scatterplot(
            data=data,
            x="final_loss",
            y=metric,
            hue="schedule",
            hue_order=schedules,
            palette=_schedule_colours(schedules),
            size="T",
            sizes=(20, 120),
            size_norm=LogNorm(),  # T doubles from one grid value to the next
            alpha=0.85,
            ax=ax,
        )
        ax.set_title(prefix + _spearman_text(data["final_loss"], data[metric]), fontsize="medium")
        ax.set_xlabel("final training loss")
        ax.set_ylabel(metric_label(metric))
        ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def _decimals_for(value: float, significant: int) -> int:
    """Decimal places that show ``value`` with ``significant`` significant digits (at least 0)."""
    if value == 0 or not math.isfinite(value):
        return significant - 1
    return max(0, significant - 1 - math.floor(math.log10(abs(value))))


def _mean_std_text(values: pd.Series, digits: int) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    mean = float(values.mean())
    if len(values) == 1:
        return f"{mean:.{_decimals_for(mean, digits)}f}"
    std = float(values.std(ddof=1))
    if std == 0:
        return f"{mean:.{_decimals_for(mean, digits)}f} ± 0"
    # Round both to the second significant digit of the spread: more digits would be noise.
    decimals = _decimals_for(std, 2)
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def metrics_summary_table(
    runs: pd.DataFrame, metrics: Sequence[str] | str, *, digits: int = 3
) -> pd.DataFrame:
    """``"mean ± std"`` over seeds of each metric, rows (dataset, schedule), columns (metric, T).

    Mean and sample standard deviation are rounded to the standard deviation's second significant
    digit (``"21.2 ± 3.3"``, ``"0.0012 ± 0.0004"``); a single seed gives the mean alone with
    ``digits`` significant digits, and a cell without values ``"–"``.
    """
    _check_runs(runs)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    pairs = set(runs.groupby(["dataset", "schedule"]).size().index)
    order = [
        (dataset, schedule)
        for dataset in _datasets(runs)
        for schedule in _schedules_in_order(runs["schedule"])
        if (dataset, schedule) in pairs
    ]
    index = pd.MultiIndex.from_tuples(order, names=["dataset", "schedule"])
    t_values = sorted(runs["T"].unique())
    columns = pd.MultiIndex.from_product([metrics, t_values], names=["metric", "T"])
    table = pd.DataFrame("–", index=index, columns=columns, dtype=object)
    for (dataset, schedule, t), group in runs.groupby(["dataset", "schedule", "T"]):
        for metric in metrics:
            if metric in group.columns:
                table.loc[(dataset, schedule), (metric, t)] = _mean_std_text(group[metric], digits)
    return table


# The column that summarises each metric: KID and IS are means over subsets / splits.
_SUMMARY_COLUMN = {"fid": "fid", "kid": "kid_mean", "is": "is_mean"}


def metric_figure(name: str, runs: pd.DataFrame, floor: Mapping | None = None) -> plt.Figure:
    """The workflow's metric figures by file name.

    ``{extractor}_{fid|kid|is}_vs_T`` draws :func:`plot_metric_vs_T` with the floor's value of
    that metric (``floor`` is a real-data floor's metrics, as in ``floor.json``);
    ``loss_vs_{fid|kid|is}`` draws :func:`plot_loss_vs_metric` on the classifier's metric.
    """
    if name.startswith("loss_vs_"):
        return plot_loss_vs_metric(
            runs, "classifier_" + _SUMMARY_COLUMN[name.removeprefix("loss_vs_")]
        )
    extractor, short = name.removesuffix("_vs_T").split("_")
    metric = f"{extractor}_{_SUMMARY_COLUMN[short]}"
    return plot_metric_vs_T(runs, metric, floor=(floor or {}).get(metric))
