"""Figures of the forward process: thesis figures 4.3, 5.1, 5.2 and report 003's figures 1 and 2.

Each function takes tables (DataFrames) or arrays read from ``results/analysis/`` and
returns a matplotlib Figure; the caller saves it with :func:`ddpm.plots.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import ConfigError, DataError
from ..analysis.thesis import closest_points
from .style import SCHEDULE_PALETTE, use_style

__all__ = [
    "draw_alpha_bar_vs_t_over_T",
    "draw_beta_and_one_minus_alpha_bar",
    "draw_closeness",
    "draw_forward_samples_with_histograms",
    "draw_iterative_destruction",
    "plot_alpha_bar_vs_t_over_T",
    "plot_closeness",
    "plot_forward_samples_with_histograms",
    "plot_iterative_destruction",
    "plot_schedules_beta_and_one_minus_alpha_bar",
]


def _require(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = sorted(set(columns) - set(table.columns))
    if missing:
        raise ConfigError(f"the {what} lacks columns {missing}; pass the table the analysis wrote")


def _schedule_color(label: str, beta_schedule: str | None = None) -> str | None:
    """The project's colour for a schedule label, else for its beta_schedule name."""
    return SCHEDULE_PALETTE.get(label) or SCHEDULE_PALETTE.get(beta_schedule or "")


def _image_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def plot_iterative_destruction(destruction: Mapping[int, np.ndarray], ncols: int = 4) -> plt.Figure:
    """Thesis figure 4.3: the photo at the kept steps of the step-by-step forward chain.

    ``destruction`` maps t to a uint8 image (H, W, 3) or (H, W), as written by
    :func:`ddpm.analysis.iterative_destruction`.
    """
    if not destruction:
        raise ConfigError("destruction is empty; pass {t: uint8 image} from iterative_destruction")
    use_style()
    steps = sorted(destruction)
    ncols = min(ncols, len(steps))
    nrows = math.ceil(len(steps) / ncols)
    height, width = np.asarray(destruction[steps[0]]).shape[:2]
    panel_width = 2.6
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(panel_width * ncols, panel_width * height / width * nrows + 0.35 * nrows),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, t in zip(axes.flat, steps, strict=False):
        image = np.asarray(destruction[t])
        ax.set_axis_on()
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(f"t = {t}")
        _image_axes(ax)
    fig.tight_layout()
    return fig


def plot_schedules_beta_and_one_minus_alpha_bar(
    schedules_table: pd.DataFrame, T: int = 1000, schedules: Sequence[str] = ("linear", "cosine")
) -> plt.Figure:
    """Thesis figure 5.1: beta_t (left, log scale) and 1 - alpha_bar_t (right) against t.

    ``schedules_table`` is :func:`ddpm.analysis.schedule_table`'s output; the rows with
    this ``T`` and schedule labels in ``schedules`` are drawn.
    """
    _require(schedules_table, ["schedule", "T", "t", "beta", "alpha_bar"], "schedules table")
    part = schedules_table[
        (schedules_table["T"] == T) & schedules_table["schedule"].isin(schedules)
    ]
    absent = [s for s in schedules if s not in set(part["schedule"])]
    if absent:
        raise ConfigError(f"the schedules table has no rows for {absent} with T={T}")
    use_style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for label in schedules:
        rows = part[part["schedule"] == label].sort_values("t")
        color = _schedule_color(label, rows.get("beta_schedule", pd.Series([None])).iloc[0])
        left.plot(rows["t"], rows["beta"], color=color, label=label)
        right.plot(rows["t"], 1.0 - rows["alpha_bar"], color=color, label=label)
    left.set(
        xlabel="t", ylabel=r"$\beta_t$", yscale="log", title=r"variance of each step $\beta_t$"
    )
    right.set(
        xlabel="t",
        ylabel=r"$1 - \bar\alpha_t$",
        title=r"variance of $q(x_t \mid x_0)$: $1 - \bar\alpha_t$",
    )
    right.legend(title=f"T = {T}")
    fig.tight_layout()
    return fig


def plot_closeness(
    closeness_table: pd.DataFrame, reading: str = "copies", photo: str | None = None
) -> plt.Figure:
    """Thesis figure 5.2: mean |C - I| against t, one panel per schedule, one line per size.

    The pure-noise band of each image size is shaded in its colour and the closest point
    (the first t inside the band, see :func:`ddpm.analysis.closest_points`) is marked.
    ``reading`` is ``"copies"`` (n x n covariance, the thesis's curves) or ``"pixels"``
    (D x D); ``photo`` picks one photo of the table (default: the first).
    """
    if reading not in ("copies", "pixels"):
        raise ConfigError(f"reading must be 'copies' or 'pixels', got {reading!r}")
    value, low, high = (
        f"closeness_{reading}",
        f"noise_band_low_{reading}",
        f"noise_band_high_{reading}",
    )
    _require(
        closeness_table,
        ["photo", "schedule", "T", "image_size", "num_pixels", "batch_size", "t", value, low, high],
        "closeness table",
    )
    photo = closeness_table["photo"].iloc[0] if photo is None else photo
    table = closeness_table[(closeness_table["photo"] == photo) & (closeness_table["t"] >= 1)]
    table = table[table[value].notna()]
    if table.empty:
        raise ConfigError(f"no {reading} values for photo {photo!r} in the closeness table")
    closest = closest_points(table).set_index(["schedule", "T", "image_size"])
    panels = list(dict.fromkeys(zip(table["schedule"], table["T"], strict=True)))
    sizes = sorted(table["image_size"].unique())
    colors = dict(zip(sizes, plt.cm.viridis(np.linspace(0.0, 0.85, len(sizes))), strict=True))

    use_style()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.0 * len(panels), 3.6), sharey=True, squeeze=False
    )
    for ax, (schedule, T) in zip(axes[0], panels, strict=True):
        for size in sizes:
            rows = table[
                (table["schedule"] == schedule) & (table["T"] == T) & (table["image_size"] == size)
            ].sort_values("t")
            if not rows.empty:
                t_enter = closest.loc[(schedule, T, size), f"t_enter_{reading}"]
                _draw_closeness_curve(ax, rows, (value, low, high), t_enter, colors[size], size)
        ax.set(title=f"{schedule} (T = {T})", xlabel="t", yscale="log", xlim=(0, T))
    axes[0][0].set_ylabel(r"closeness  mean $|C - I|$")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    handles += [
        plt.Rectangle((0, 0), 1, 1, color="gray", alpha=0.25, lw=0),
        plt.Line2D([], [], marker="o", color="gray", ls=":", mec="black", mew=0.6),
    ]
    labels += ["pure-noise band", "enters the band"]
    axes[0][-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    n = int(table["batch_size"].iloc[0])
    shape = "n x n, copies over pixels" if reading == "copies" else "D x D, pixels over copies"
    fig.suptitle(f"Closeness to isotropic noise of {n} noised copies of {photo} ({shape})")
    fig.tight_layout()
    return fig


def _draw_closeness_curve(ax, rows, columns, t_enter: float, color, size: int) -> None:
    """One image size's closeness curve, its pure-noise band and the point it enters the band."""
    value, low, high = columns
    D = int(rows["num_pixels"].iloc[0])
    ax.axhspan(rows[low].iloc[0], rows[high].iloc[0], color=color, alpha=0.18, lw=0)
    ax.plot(rows["t"], rows[value], color=color, lw=0.9, label=f"{size}x{size} (D = {D})")
    if not math.isnan(t_enter):
        at = rows.loc[rows["t"] == t_enter, value].iloc[0]
        ax.axvline(t_enter, color=color, lw=0.8, ls=":")
        ax.plot([t_enter], [at], "o", color=color, ms=5, mec="black", mew=0.6)


def plot_alpha_bar_vs_t_over_T(
    schedules_table: pd.DataFrame, schedules: Sequence[str] | None = None
) -> plt.Figure:
    """Report 003 figure 1: alpha_bar_t against t/T, one panel per schedule, one line per T."""
    _require(schedules_table, ["schedule", "T", "t", "alpha_bar"], "schedules table")
    schedules = (
        list(dict.fromkeys(schedules_table["schedule"])) if schedules is None else list(schedules)
    )
    absent = [s for s in schedules if s not in set(schedules_table["schedule"])]
    if absent:
        raise ConfigError(f"the schedules table has no rows for schedules {absent}")
    Ts = sorted(schedules_table["T"].unique())
    colors = dict(zip(Ts, plt.cm.viridis(np.linspace(0.0, 0.85, len(Ts))), strict=True))
    use_style()
    fig, axes = plt.subplots(
        1, len(schedules), figsize=(3.6 * len(schedules), 3.3), sharey=True, squeeze=False
    )
    for ax, label in zip(axes[0], schedules, strict=True):
        part = schedules_table[schedules_table["schedule"] == label]
        for T, rows in part.groupby("T"):
            rows = rows.sort_values("t")
            # alpha_bar_0 = 1 at t/T = 0 starts every curve at the same point
            x = np.concatenate([[0.0], rows["t"].to_numpy() / T])
            y = np.concatenate([[1.0], rows["alpha_bar"].to_numpy()])
            ax.plot(x, y, color=colors[T], label=f"T = {T}")
        ax.set(title=label, xlabel="t / T", xlim=(0, 1), ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel(r"$\bar\alpha_t = \prod_{s \leq t} (1 - \beta_s)$")
    axes[0][-1].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def _display_image(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(H, W), (1, H, W) or (3, H, W) in model units -> something imshow can show."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    if image.ndim == 2:
        return np.clip(image, -1.0, 1.0), "gray"
    return (np.clip(image, -1.0, 1.0) + 1.0) / 2.0, None


def plot_forward_samples_with_histograms(
    images_by_t: Mapping[int, np.ndarray], T: int, bins: int = 50
) -> plt.Figure:
    """Report 003 figure 2: x_t at several t (top) and its pixel histogram with N(0, 1) (bottom).

    ``images_by_t`` maps t to x_t in model units, (H, W) or (C, H, W), as written by
    :func:`ddpm.analysis.forward_samples`; images are shown clipped to [-1, 1], the
    histograms use every value.
    """
    if not images_by_t:
        raise ConfigError("images_by_t is empty; pass {t: x_t} from forward_samples")
    use_style()
    steps = sorted(images_by_t)
    fig, axes = plt.subplots(2, len(steps), figsize=(2.1 * len(steps), 4.4), squeeze=False)
    grid = np.linspace(-4.0, 4.0, 400)
    density = np.exp(-0.5 * grid**2) / math.sqrt(2.0 * math.pi)
    for column, t in enumerate(steps):
        top, bottom = axes[0][column], axes[1][column]
        image, cmap = _display_image(images_by_t[t])
        top.imshow(image, cmap=cmap, vmin=-1 if cmap else None, vmax=1 if cmap else None)
        top.set_title(f"t = {t}")
        _image_axes(top)
        values = np.asarray(images_by_t[t], dtype=np.float64).ravel()
        bottom.hist(values, bins=bins, range=(-4, 4), density=True, color="0.55")
        bottom.plot(grid, density, color="tab:blue", lw=1.2)
        bottom.set(xlim=(-4, 4), yticks=[])
        bottom.set_xlabel("pixel value")
    axes[1][0].set_ylabel("density")
    fig.suptitle(f"Forward samples and their pixel distributions (T = {T}; blue: N(0, 1))")
    fig.tight_layout()
    return fig


def draw_iterative_destruction(destruction: str) -> plt.Figure:
    """:func:`plot_iterative_destruction` of the destruction file the analysis wrote."""
    from ..analysis.forward import load_images_by_t

    return plot_iterative_destruction(load_images_by_t(destruction))


def draw_forward_samples_with_histograms(forward_samples: str) -> plt.Figure:
    """:func:`plot_forward_samples_with_histograms` of a forward-samples file, at the T it
    records."""
    from ..analysis.forward import load_images_by_t, load_T

    T = load_T(forward_samples)
    if T is None:
        raise DataError(
            f"{forward_samples} does not say which T its forward samples come from; "
            "write it again with the forward-samples step of the workflow"
        )
    return plot_forward_samples_with_histograms(load_images_by_t(forward_samples), T=T)


def draw_beta_and_one_minus_alpha_bar(closeness_schedules: str) -> plt.Figure:
    """:func:`plot_schedules_beta_and_one_minus_alpha_bar` of a schedule table, at its largest T."""
    table = pd.read_csv(closeness_schedules)
    return plot_schedules_beta_and_one_minus_alpha_bar(table, T=int(table["T"].max()))


def draw_closeness(closeness: str) -> plt.Figure:
    """:func:`plot_closeness` of the closeness table."""
    return plot_closeness(pd.read_csv(closeness))


def draw_alpha_bar_vs_t_over_T(schedules: str) -> plt.Figure:
    """:func:`plot_alpha_bar_vs_t_over_T` of the schedule table."""
    return plot_alpha_bar_vs_t_over_T(pd.read_csv(schedules))
