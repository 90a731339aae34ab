"""Every forward-process figure renders to PNG from the tables and arrays the analysis writes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from schedule_specs import report_003_schedule_specs, thesis_schedule_specs

from ddpm import DataError
from ddpm.analysis.closeness_study import closeness_table
from ddpm.analysis.forward import (
    forward_samples,
    iterative_destruction,
    load_images_by_t,
    save_images_by_t,
)
from ddpm.plots.style import save_figure
from ddpm.plots.thesis import (
    plot_alpha_bar_vs_t_over_T,
    plot_closeness,
    plot_forward_samples_with_histograms,
    plot_iterative_destruction,
    plot_schedules_beta_and_one_minus_alpha_bar,
)
from ddpm.schedules import ScheduleSpec, make_schedule, schedule_table
from ddpm.workflow.figures import draw_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(fig, path):
    save_figure(fig, path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert fig.number not in plt.get_fignums()  # save_figure closes the figure


@pytest.fixture(scope="module")
def small_closeness():
    specs = [
        ScheduleSpec("linear", "linear", 40, {"beta_start": 1e-3, "beta_end": 0.3}),
        ScheduleSpec("cosine", "cosine", 40, {}),
        ScheduleSpec("sigmoid", "sigmoid", 40, {"beta_start": 1e-3, "beta_end": 0.3}),
    ]
    return closeness_table(specs, image_sizes=(4, 8), batch_size=8, noise_repeats=30)


def test_fig_closeness_both_readings(small_closeness, tmp_path):
    for reading in ("copies", "pixels"):
        fig = plot_closeness(small_closeness, reading=reading)
        axes = fig.get_axes()
        assert [ax.get_title() for ax in axes] == [
            "linear (T = 40)",
            "cosine (T = 40)",
            "sigmoid (T = 40)",
        ]
        assert_png(fig, tmp_path / f"closeness_{reading}.png")
    with pytest.raises(ValueError, match="reading"):
        plot_closeness(small_closeness, reading="rows")
    with pytest.raises(ValueError, match="closeness_copies"):
        plot_closeness(small_closeness.drop(columns="closeness_copies"))


def test_fig_closeness_reads_a_written_table(small_closeness, tmp_path):
    # t = 0 carries inf (log-SNR, KL); the CSV round trip must not break the figure.
    small_closeness.to_csv(tmp_path / "closeness.csv", index=False)
    assert_png(plot_closeness(pd.read_csv(tmp_path / "closeness.csv")), tmp_path / "c.png")


def test_fig_schedules_beta_and_one_minus_alpha_bar(tmp_path):
    table = schedule_table(thesis_schedule_specs(1000))
    fig = plot_schedules_beta_and_one_minus_alpha_bar(table)
    left, right = fig.get_axes()
    assert len(left.get_lines()) == 2 and len(right.get_lines()) == 2
    # the right panel shows 1 - alpha_bar: it ends at (almost) 1 for both schedules
    assert all(line.get_ydata()[-1] > 0.99 for line in right.get_lines())
    assert_png(fig, tmp_path / "fig51.png")
    with pytest.raises(ValueError, match="T=500"):
        plot_schedules_beta_and_one_minus_alpha_bar(table, T=500)


def test_fig_alpha_bar_vs_t_over_T(tmp_path):
    table = schedule_table(report_003_schedule_specs((50, 100, 800)))
    fig = plot_alpha_bar_vs_t_over_T(table)
    assert [ax.get_title() for ax in fig.get_axes()] == ["linear", "cosine", "sigmoid"]
    assert all(len(ax.get_lines()) == 3 for ax in fig.get_axes())
    assert_png(fig, tmp_path / "r3f1.png")


def test_fig_forward_samples_with_histograms(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (1, 12, 12), dtype=np.uint8)
    schedule = make_schedule("linear", 100, beta_start=1e-5, beta_end=0.01, rescale_to_T=True)
    samples = forward_samples(image, schedule, ts=(0, 20, 100))
    save_images_by_t(tmp_path / "samples.npz", samples, T=100)
    fig = plot_forward_samples_with_histograms(load_images_by_t(tmp_path / "samples.npz"), T=100)
    assert len(fig.get_axes()) == 6  # an image and a histogram per step
    assert_png(fig, tmp_path / "r3f2.png")
    colour = forward_samples(np.zeros((3, 6, 6), dtype=np.uint8), schedule, ts=(0, 50))
    assert_png(plot_forward_samples_with_histograms(colour, T=100), tmp_path / "colour.png")


def test_forward_samples_figure_reads_T_from_its_data(tmp_path):
    image = np.zeros((1, 6, 6), dtype=np.uint8)
    schedule = make_schedule("cosine", 250)
    path = tmp_path / "forward.npz"
    save_images_by_t(path, forward_samples(image, schedule), T=schedule.T)
    fig = draw_figure("report003_fig2_forward_samples_histograms", {"forward_samples": str(path)})
    assert "T = 250" in fig._suptitle.get_text()
    save_images_by_t(path, forward_samples(image, schedule))  # an old file without T
    with pytest.raises(DataError, match="which T"):
        draw_figure("report003_fig2_forward_samples_histograms", {"forward_samples": str(path)})


def test_fig_iterative_destruction(tmp_path):
    photo = np.random.default_rng(0).integers(0, 256, (12, 18, 3), dtype=np.uint8)
    destruction = iterative_destruction(photo, T=50, keep=(0, 5, 10, 20, 50))
    fig = plot_iterative_destruction(destruction, ncols=3)
    titles = [ax.get_title() for ax in fig.get_axes() if ax.get_title()]
    assert titles == ["t = 0", "t = 5", "t = 10", "t = 20", "t = 50"]
    assert_png(fig, tmp_path / "destruction.png")
    with pytest.raises(ValueError, match="empty"):
        plot_iterative_destruction({})
