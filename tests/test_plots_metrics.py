"""Figures and the summary table of sample quality over the schedule x T grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection

from ddpm.plots.metrics import (
    metric_label,
    metrics_summary_table,
    plot_loss_vs_metric,
    plot_metric_vs_T,
)
from ddpm.plots.style import save_figure

SCHEDULES = ("linear", "cosine", "sigmoid")
T_VALUES = (50, 100, 200, 400, 800)


@pytest.fixture
def runs() -> pd.DataFrame:
    """A 3 x 5 grid with 3 seeds; Inception metrics were not computed (all NaN)."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "dataset": "mnist5k",
            "schedule": schedule,
            "T": t,
            "seed": seed,
            "final_loss": 0.03 + 0.003 * rng.normal(),
            "classifier_fid": 20 + 3 * rng.normal() + 10 / np.log2(t),
            "classifier_is_mean": 7 + rng.normal(),
            "inception_fid": np.nan,
        }
        for schedule in SCHEDULES
        for t in T_VALUES
        for seed in range(3)
    ]
    return pd.DataFrame(rows)


def _saved_png(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    save_figure(fig, path)
    assert path.stat().st_size > 1000
    return path


def test_metric_vs_T_shows_mean_and_std_over_seeds(runs, tmp_path):
    fig = plot_metric_vs_T(runs, "classifier_fid", floor=[2.5, 3.5])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert len(ax.containers) == len(SCHEDULES)
    expected = runs.groupby(["schedule", "T"])["classifier_fid"]
    for container, schedule in zip(ax.containers, SCHEDULES, strict=True):
        data_line, _, (bars,) = container.lines
        assert container.get_label().startswith(schedule)
        means = expected.mean().loc[schedule].to_numpy()
        stds = np.array([np.std(expected.get_group((schedule, t)), ddof=1) for t in T_VALUES])
        np.testing.assert_allclose(data_line.get_ydata(), means)
        assert isinstance(bars, LineCollection)
        half_heights = [(seg[1, 1] - seg[0, 1]) / 2 for seg in bars.get_segments()]
        np.testing.assert_allclose(half_heights, stds)
    floor_lines = [line for line in ax.get_lines() if line.get_label() == "real data (floor)"]
    assert len(floor_lines) == 1 and floor_lines[0].get_ydata()[0] == pytest.approx(3.0)
    _saved_png(fig, tmp_path, "fid_vs_T")


def test_metric_vs_T_with_an_uncomputed_metric_draws_a_labelled_empty_panel(runs, tmp_path):
    fig = plot_metric_vs_T(runs, "inception_fid", floor=1.0)
    texts = [text.get_text() for text in fig.axes[0].texts]
    assert any("not computed" in text and "inception_fid" in text for text in texts)
    _saved_png(fig, tmp_path, "inception_fid_vs_T")
    # A column that is absent altogether is "not computed" as well.
    fig = plot_metric_vs_T(runs.drop(columns="inception_fid"), "inception_fid")
    assert any("not computed" in text.get_text() for text in fig.axes[0].texts)
    _saved_png(fig, tmp_path, "absent")


def test_metric_vs_T_one_panel_per_dataset(runs, tmp_path):
    both = pd.concat([runs, runs.assign(dataset="cifar10")], ignore_index=True)
    fig = plot_metric_vs_T(both, "classifier_fid", floor={"mnist5k": 3.0})
    assert [ax.get_title() for ax in fig.axes] == ["cifar10", "mnist5k"]
    _saved_png(fig, tmp_path, "two_datasets")


def test_loss_vs_metric_reports_the_spearman_correlation(runs, tmp_path):
    fig = plot_loss_vs_metric(runs, "classifier_fid")
    # Spearman's rho is Pearson's correlation of the ranks.
    rho = np.corrcoef(runs["final_loss"].rank(), runs["classifier_fid"].rank())[0, 1]
    title = fig.axes[0].get_title()
    assert f"ρ = {rho:.2f}" in title and f"n = {len(runs)}" in title
    _saved_png(fig, tmp_path, "loss_vs_fid")

    fig = plot_loss_vs_metric(runs, "inception_fid")
    assert any("not computed" in text.get_text() for text in fig.axes[0].texts)
    _saved_png(fig, tmp_path, "loss_vs_inception_fid")


def test_loss_vs_metric_with_too_few_runs(runs):
    fig = plot_loss_vs_metric(runs.head(2), "classifier_fid")
    assert "too few runs" in fig.axes[0].get_title()


def test_summary_table_formats_mean_and_std_over_seeds():
    runs = pd.DataFrame(
        {
            "dataset": "mnist5k",
            "schedule": ["linear"] * 3 + ["cosine"] * 2 + ["cosine"],
            "T": [50, 50, 50, 50, 50, 100],
            "seed": [0, 1, 2, 0, 1, 0],
            # linear T=50: mean 20.0, sample std 0.954 -> 2 significant digits of the std
            # cosine T=50: mean 0.00125, sample std 0.000354; cosine T=100: one seed
            "classifier_fid": [20.1, 20.9, 19.0, 0.001, 0.0015, 123.456],
            "inception_fid": np.nan,
        }
    )
    table = metrics_summary_table(runs, ["classifier_fid", "inception_fid"])
    assert list(table.index) == [("mnist5k", "linear"), ("mnist5k", "cosine")]  # palette order
    assert table.loc[("mnist5k", "linear"), ("classifier_fid", 50)] == "20.00 ± 0.95"
    assert table.loc[("mnist5k", "cosine"), ("classifier_fid", 50)] == "0.00125 ± 0.00035"
    assert table.loc[("mnist5k", "cosine"), ("classifier_fid", 100)] == "123"
    assert table.loc[("mnist5k", "linear"), ("classifier_fid", 100)] == "–"  # not run
    assert (table["inception_fid"] == "–").all().all()


def test_missing_run_columns_are_named():
    with pytest.raises(ValueError, match="seed"):
        plot_metric_vs_T(pd.DataFrame({"dataset": [], "schedule": [], "T": []}), "x")


def test_metric_labels():
    assert metric_label("classifier_fid") == "FID, classifier features (lower is better)"
    assert metric_label("inception_is_mean") == "IS, inception features (higher is better)"
    assert metric_label("final_loss") == "final loss"
