"""Figures of trained runs: loss curves, sample grids, training progress, reconstruction and
the best cell.

The ``plot_*`` functions take plain tables or arrays and return a matplotlib Figure; the
``draw_*`` functions read the run files the workflow hands over and call them (they are the
draw functions of :data:`ddpm.workflow.figures.FIGURES`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..sampling import image_grid
from .style import use_style

__all__ = [
    "draw_best_cell",
    "draw_interpolation",
    "draw_loss_curves",
    "draw_reconstruction",
    "draw_sample_grids",
    "draw_training_progress",
    "plot_best_cell",
    "plot_interpolation",
    "plot_loss_curves",
    "plot_reconstruction",
    "plot_sample_grids",
    "plot_training_progress",
]


def _show(ax, images, nrow=None):
    images = np.asarray(images)
    mosaic = image_grid(images, nrow or max(1, math.isqrt(len(images))), padding=1, pad_value=255)
    gray = images.shape[1] == 1
    ax.imshow(mosaic[..., 0] if gray else mosaic, cmap="gray" if gray else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_loss_curves(logs: pd.DataFrame, smooth: int = 5) -> plt.Figure:
    """Report 003, figure 4: training loss against step, one panel per schedule, one line per T.

    ``logs`` has columns schedule, T, seed, step, loss (every run's train_log.csv stacked).
    Seeds are averaged, with their spread shaded.
    """
    use_style()
    logs = logs.sort_values(["schedule", "T", "seed", "step"]).copy()
    logs["loss (smoothed)"] = logs.groupby(["schedule", "T", "seed"])["loss"].transform(
        lambda s: s.rolling(smooth, min_periods=1).mean()
    )
    schedules = list(dict.fromkeys(logs["schedule"]))
    fig, axes = plt.subplots(
        1, len(schedules), figsize=(4.2 * len(schedules), 3.4), sharey=True, squeeze=False
    )
    for ax, schedule in zip(axes[0], schedules, strict=True):
        part = logs[logs["schedule"] == schedule]
        sns.lineplot(
            part,
            x="step",
            y="loss (smoothed)",
            hue="T",
            palette="viridis",
            errorbar="sd",
            legend=ax is axes[0][-1],
            ax=ax,
        )
        ax.set_title(schedule)
        ax.set_yscale("log")
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1, 1), title="T")
    fig.suptitle("Training loss (L_simple) per schedule and T")
    fig.tight_layout()
    return fig


def plot_sample_grids(samples: Mapping[tuple[str, int], np.ndarray], count: int = 16) -> plt.Figure:
    """Report 003, figure 5: generated samples, one row per schedule, one column per T."""
    schedules = list(dict.fromkeys(s for s, _ in samples))
    steps = sorted({T for _, T in samples})
    fig, axes = plt.subplots(
        len(schedules), len(steps), figsize=(1.9 * len(steps), 2.0 * len(schedules)), squeeze=False
    )
    for i, schedule in enumerate(schedules):
        for j, T in enumerate(steps):
            ax = axes[i][j]
            if (schedule, T) in samples:
                _show(ax, samples[(schedule, T)][:count])
            else:
                ax.axis("off")
            if i == 0:
                ax.set_title(f"T = {T}")
            if j == 0:
                ax.set_ylabel(schedule)
    fig.suptitle("Samples (Algorithm 2) per schedule and T")
    fig.tight_layout()
    return fig


def plot_training_progress(
    snapshots: Mapping[str, tuple[Sequence[int], np.ndarray]], count: int = 16
) -> plt.Figure:
    """Report 002, figure 3: samples of the EMA model at several points during training.

    ``snapshots`` maps a row label (a run) to (steps, images of shape K x N x C x H x W).
    """
    labels = list(snapshots)
    n_cols = max(len(steps) for steps, _ in snapshots.values())
    fig, axes = plt.subplots(
        len(labels), n_cols, figsize=(1.9 * n_cols, 2.0 * len(labels)), squeeze=False
    )
    for i, label in enumerate(labels):
        steps, images = snapshots[label]
        for j in range(n_cols):
            ax = axes[i][j]
            if j >= len(steps):
                ax.axis("off")
                continue
            _show(ax, images[j][:count])
            ax.set_title(f"step {int(steps[j])}", fontsize=8)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle("Samples during training")
    fig.tight_layout()
    return fig


def plot_reconstruction(
    reconstructions: Mapping[str, tuple[Sequence[int], np.ndarray, np.ndarray]],
) -> plt.Figure:
    """Report 002, figure 4: real images noised to x_t and denoised back, for several t.

    ``reconstructions`` maps a row label to (ts, originals N x C x H x W,
    reconstructions len(ts) x N x C x H x W).
    """
    labels = list(reconstructions)
    n_cols = 1 + max(len(ts) for ts, _, _ in reconstructions.values())
    fig, axes = plt.subplots(
        len(labels), n_cols, figsize=(1.6 * n_cols, 1.9 * len(labels)), squeeze=False
    )
    for i, label in enumerate(labels):
        ts, originals, recon = reconstructions[label]
        _show(axes[i][0], originals, nrow=2)
        axes[i][0].set_title("original", fontsize=8)
        axes[i][0].set_ylabel(label, fontsize=8)
        for j in range(1, n_cols):
            ax = axes[i][j]
            if j - 1 >= len(ts):
                ax.axis("off")
                continue
            _show(ax, recon[j - 1], nrow=2)
            ax.set_title(f"from t = {int(ts[j - 1])}", fontsize=8)
    fig.suptitle("Reconstruction from x_t")
    fig.tight_layout()
    return fig


def plot_best_cell(samples: np.ndarray, real: np.ndarray, title: str, count: int = 64):
    """The best cell's samples next to real test digits, the same number of each."""
    count = min(count, len(samples), len(real))
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 4.3), squeeze=False)
    _show(axes[0][0], samples[:count])
    axes[0][0].set_title("generated: " + title, fontsize=9)
    _show(axes[0][1], real[:count])
    axes[0][1].set_title("real test digits", fontsize=9)
    fig.tight_layout()
    return fig


def draw_best_cell(
    metrics: str, floor: str, runs: Sequence[str], data: str, count: int = 64
) -> plt.Figure:
    """:func:`plot_best_cell` for the cell :func:`ddpm.verdicts.best_cell` picks, showing the
    seed whose FID is the median of the cell's seeds (not the best one: no cherry-picking).

    ``metrics`` and ``floor`` are the dataset's metrics table and real-data floor, ``runs`` the
    ``samples.npz`` of every run, ``data`` the prepared dataset (its test split is shown).
    """
    from ..data.store import load_split
    from ..evaluation.scoring import read_metrics
    from ..results import run_of
    from ..sampling import load_samples
    from ..verdicts import best_cell

    use_style()
    best = best_cell(pd.read_csv(metrics), read_metrics(floor))
    seed = best["median_seed"]
    wanted = (best["schedule"], best["T"], seed)
    (path,) = [p for p in runs if _cell_of(run_of(p)) == wanted]
    real, _ = load_split(data, "test")
    title = f"{best['schedule']}, T = {best['T']}, seed {seed}"
    return plot_best_cell(np.asarray(load_samples(path)), np.asarray(real), title, count)


def _cell_of(run: Mapping) -> tuple:
    return run["schedule"], run["T"], run["seed"]


def _largest_T_per_schedule(paths) -> dict[str, str]:
    """For each schedule, the file of its run with the largest T (first seed)."""
    from ..results import run_of

    best: dict[str, tuple] = {}
    for path in paths:
        run = run_of(path)
        key = (run["T"], -run["seed"])
        if run["schedule"] not in best or key > best[run["schedule"]][0]:
            best[run["schedule"]] = (key, path)
    return {f"{s} (T={k[0]})": p for s, (k, p) in best.items()}


def draw_loss_curves(runs: Sequence[str]) -> plt.Figure:
    """:func:`plot_loss_curves` of every run's ``train_log.csv``."""
    from ..results import run_of

    frames = [pd.read_csv(p).assign(**run_of(p)) for p in runs]
    return plot_loss_curves(pd.concat(frames, ignore_index=True))


def draw_sample_grids(runs: Sequence[str], count: int = 16) -> plt.Figure:
    """:func:`plot_sample_grids` of every run's ``samples.npz`` (the first seed of each cell)."""
    from ..results import run_of
    from ..sampling import load_samples

    samples = {}
    for path in runs:
        run = run_of(path)
        samples.setdefault((run["schedule"], run["T"]), load_samples(path))
    return plot_sample_grids(samples, count)


def draw_training_progress(runs: Sequence[str], count: int = 16) -> plt.Figure:
    """:func:`plot_training_progress` of the ``snapshots.npz`` of each schedule's largest T."""
    snapshots = {}
    for label, path in _largest_T_per_schedule(runs).items():
        with np.load(path) as data:
            snapshots[label] = (data["steps"], data["images"])
    return plot_training_progress(snapshots, count)


def draw_reconstruction(runs: Sequence[str]) -> plt.Figure:
    """:func:`plot_reconstruction` of the ``reconstruction.npz`` of each schedule's largest T."""
    rows = {}
    for label, path in _largest_T_per_schedule(runs).items():
        with np.load(path) as data:
            rows[label] = (data["t"], data["originals"], data["reconstructions"])
    return plot_reconstruction(rows)


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
