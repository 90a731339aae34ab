"""Figures and tables of sample quality over the schedule x T grid.

Every function reads the tidy table of runs (one row per trained model) with the columns
``dataset``, ``schedule``, ``T``, ``seed``, ``final_loss`` and metric columns such as
``classifier_fid`` or ``inception_is_mean`` (see :func:`ddpm.evaluation.compute_metrics`), with
their within-run bootstrap spread ``classifier_fid_boot_sd``. Means over seeds come with a 95 %
Student-t interval over the n seeds; the part of the spread the finite samples explain is shown
separately (:func:`ddpm.results.cell_summary`). A metric column that is missing or
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

from .. import ConfigError
from .style import schedule_colours, schedules_in_order, use_style

__all__ = [
    "draw_loss_vs_metric",
    "draw_metric_vs_T",
    "floor_band",
    "format_interval",
    "metric_label",
    "metrics_summary_table",
    "plot_loss_vs_metric",
    "plot_metric_vs_T",
    "plot_metric_vs_T_with_floor",
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
        raise ConfigError(
            f"the runs table lacks the column(s) {missing}; it needs one row per run with "
            f"{list(_RUN_COLUMNS)} and the metric columns"
        )


def _has_values(runs: pd.DataFrame, column: str) -> bool:
    return column in runs.columns and runs[column].notna().any()


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


def _floor_for(floor, dataset) -> dict | None:
    """The floor that applies to ``dataset`` as ``{"value", "lo", "hi"}`` (lo/hi: its bootstrap
    interval at the same n, or the range of repeated draws). ``floor`` is a number, a sequence of
    numbers (repeated draws), such a dict, or a mapping from dataset to any of these."""
    if floor is None:
        return None
    if isinstance(floor, Mapping) and "value" not in floor:
        return _floor_for(floor.get(dataset), dataset)
    if isinstance(floor, Mapping):
        band = {k: float(floor.get(k, floor["value"])) for k in ("value", "lo", "hi")}
        return band if math.isfinite(band["value"]) else None
    values = [float(floor)] if np.isscalar(floor) else [float(v) for v in floor]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None
    return {"value": float(np.mean(values)), "lo": min(values), "hi": max(values)}


def _draw_floor(ax: plt.Axes, band: dict | None, n_samples: int | None) -> None:
    if band is None:
        return
    if band["hi"] > band["lo"]:
        ax.axhspan(band["lo"], band["hi"], color="0.5", alpha=0.15, lw=0)
    at_n = f", n = {n_samples}" if n_samples else ""
    ax.axhline(band["value"], color="0.3", ls="--", lw=1.2, label=f"real vs real (floor{at_n})")


def _draw_schedule(ax, cells: pd.DataFrame, colour, shift: float, label: str) -> None:
    """Mean over seeds, 95 % t-interval (thin bar) and the part of it that the finite samples
    alone explain (thick inner bar)."""
    x = cells["T"].to_numpy(dtype=float) * shift
    mean = cells["mean"].to_numpy(dtype=float)
    ax.errorbar(
        x,
        mean,
        yerr=np.nan_to_num(mean - cells["lo"].to_numpy(dtype=float)),
        color=colour,
        marker="o",
        ms=4,
        capsize=3,
        lw=1.2,
        label=label,
    )
    sample = cells["sample_half"].to_numpy(dtype=float)
    if np.isfinite(sample).any():
        ax.errorbar(
            x, mean, yerr=np.nan_to_num(sample), fmt="none", ecolor=colour, lw=4, alpha=0.45
        )


def plot_metric_vs_T(
    runs: pd.DataFrame, metric: str, floor=None, n_samples: int | None = None
) -> plt.Figure:
    """``metric`` against the number of diffusion steps T, one line per schedule.

    Points are the mean over seeds; the thin bar is its 95 % Student-t interval over the n seeds
    (none for one seed), the thick inner bar the part of it the finite number of samples alone
    gives (the within-run bootstrap, :func:`ddpm.results.cell_summary`). The schedules are shifted
    a little along x so their bars do not overlap. T is on a log2 axis. One panel per dataset.

    Args:
        runs: the tidy table of runs.
        metric: the metric column, e.g. ``"classifier_fid"``.
        floor: the same metric between two real sets of the generated sets' size: a number, a
            sequence (repeated draws: their range as a band), ``{"value", "lo", "hi"}`` (the band
            is its bootstrap interval), or a mapping from dataset to any of these.
        n_samples: the generated sets' size, named in the floor's label.
    """
    from ..results import cell_summary

    _check_runs(runs)
    datasets = _datasets(runs)
    fig, axes = _panels(len(datasets), width=6.8)
    for ax, dataset in zip(axes, datasets, strict=True):
        data = runs if dataset is None else runs[runs["dataset"] == dataset]
        if len(datasets) > 1:
            ax.set_title(str(dataset))
        if not _has_values(data, metric):
            _empty_panel(ax, _not_computed(metric))
            continue
        data = data[data[metric].notna()].assign(dataset=dataset)
        cells = cell_summary(data, [metric]).sort_values("T")
        schedules = schedules_in_order(cells["schedule"])
        colours = schedule_colours(schedules)
        for i, schedule in enumerate(schedules):
            rows = cells[cells["schedule"] == schedule]
            seeds = sorted(set(rows["n"]))
            n_text = "/".join(map(str, seeds))
            _draw_schedule(
                ax,
                rows,
                colours[schedule],
                2.0 ** (0.04 * (i - (len(schedules) - 1) / 2)),
                f"{schedule} (n = {n_text} seed{'s' if seeds != [1] else ''})",
            )
        _draw_floor(ax, _floor_for(floor, dataset), n_samples)
        _label_T_axes(ax, sorted(cells["T"].unique()), metric)
    fig.tight_layout()
    return fig


def _label_T_axes(ax: plt.Axes, t_values: Sequence, metric: str) -> None:
    """T on a log2 axis ticked at the grid's values, the metric's label, the legend."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(t_values, [str(int(t)) for t in t_values])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("diffusion steps T")
    ax.set_ylabel(metric_label(metric))
    # Beside the axes: inside, it hides the points and bars it explains.
    ax.legend(
        fontsize="x-small",
        title=_INTERVAL_LEGEND,
        title_fontsize="x-small",
        bbox_to_anchor=(1.02, 1),
        loc="upper left",
    )


_INTERVAL_LEGEND = (
    "mean; bar: 95 % t-interval over seeds\nthick: part from finite samples (bootstrap)"
)


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
        schedules = schedules_in_order(data["schedule"])
        sns.scatterplot(
            data=data,
            x="final_loss",
            y=metric,
            hue="schedule",
            hue_order=schedules,
            palette=schedule_colours(schedules),
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


def format_interval(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``"21.2 [18.0, 24.4]"``: rounded to the interval half-width's second significant digit
    (more digits would be noise); without an interval, ``digits`` significant digits."""
    if not math.isfinite(mean):
        return "–"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{mean:.{_decimals_for(mean, digits)}f}"
    decimals = _decimals_for((hi - lo) / 2, 2) if hi > lo else _decimals_for(mean, digits)
    return f"{mean:.{decimals}f} [{lo:.{decimals}f}, {hi:.{decimals}f}]"


def _sd_text(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{_decimals_for(value, 2)}f}"


def metrics_summary_table(runs: pd.DataFrame, metrics: Sequence[str] | str) -> pd.DataFrame:
    """Rows (dataset, schedule, T); per metric the mean over seeds with its 95 % t-interval
    (``"20.0 [17.6, 22.4]"``), the sd between seeds and the within-run sample sd (bootstrap), so
    the two sources of spread sit side by side; and ``seeds`` (n). FID and KID columns come in
    the order of ``metrics``."""
    from ..results import cell_summary

    _check_runs(runs)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    cells = cell_summary(runs, metrics)
    order = {name: i for i, name in enumerate(schedules_in_order(runs["schedule"]))}
    rows = {}
    for cell in cells.itertuples(index=False):
        key = (cell.dataset, cell.schedule, cell.T)
        row = rows.setdefault(key, {"seeds": cell.n})
        row["seeds"] = max(row["seeds"], cell.n)
        name = metric_label(cell.metric).split(" (")[0]
        row[f"{name}: mean [95 % CI]"] = format_interval(cell.mean, cell.lo, cell.hi)
        row[f"{name}: sd over seeds"] = _sd_text(cell.sd)
        row[f"{name}: sd over samples"] = _sd_text(cell.sample_sd)
    keys = sorted(rows, key=lambda k: (str(k[0]), order[k[1]], k[2]))
    index = pd.MultiIndex.from_tuples(keys, names=["dataset", "schedule", "T"])
    return pd.DataFrame([rows[k] for k in keys], index=index).fillna("–")


def floor_band(floor: Mapping, metric: str) -> dict:
    """The floor of ``metric`` from a ``floor.json`` record: its value ± 1.96 x its bootstrap sd.

    The sd, not the bootstrap's percentiles: resampling with replacement repeats images, which
    biases FID upwards, so the percentile interval can miss the value itself; its width is sound.
    """
    value = float(floor.get(metric, math.nan))
    half = 1.96 * float(floor.get(f"{metric}_boot_sd", 0.0))
    return {"value": value, "lo": value - half, "hi": value + half}


def plot_metric_vs_T_with_floor(
    runs: pd.DataFrame, floor: Mapping | None, metric: str
) -> plt.Figure:
    """:func:`plot_metric_vs_T` with the floor's value of ``metric`` and its bootstrap band
    (``floor`` is a real-data floor's record, as in ``floor.json``)."""
    floor = floor or {}
    n = floor.get("n_generated")
    band = floor_band(floor, metric) if metric in floor else None
    return plot_metric_vs_T(runs, metric, floor=band, n_samples=int(n) if n else None)


def draw_metric_vs_T(metrics: str, floor: str, metric: str) -> plt.Figure:
    """:func:`plot_metric_vs_T_with_floor` from a dataset's ``metrics.csv`` and ``floor.json``."""
    from ..evaluation.scoring import read_metrics

    use_style()
    return plot_metric_vs_T_with_floor(pd.read_csv(metrics), read_metrics(floor), metric)


def draw_loss_vs_metric(metrics: str, metric: str) -> plt.Figure:
    """:func:`plot_loss_vs_metric` from a dataset's ``metrics.csv``."""
    use_style()
    return plot_loss_vs_metric(pd.read_csv(metrics), metric)
