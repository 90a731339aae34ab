"""Figures and the summary table of sample quality over the schedule x T grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from scipy import stats as scipy_stats

from ddpm.plots.metrics import (
    metric_label,
    metrics_summary_table,
    plot_loss_vs_metric,
    plot_metric_vs_T,
    plot_metric_vs_T_with_floor,
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
            "classifier_fid_boot_sd": 1.0 + 0.1 * seed,
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


def _half_heights(container) -> np.ndarray:
    (bars,) = container.lines[2]
    assert isinstance(bars, LineCollection)
    return np.array([(seg[1, 1] - seg[0, 1]) / 2 for seg in bars.get_segments()])


def test_metric_vs_T_shows_the_t_interval_over_seeds_and_the_sample_part(runs, tmp_path):
    fig = plot_metric_vs_T(
        runs, "classifier_fid", floor={"value": 3.0, "lo": 2.5, "hi": 3.5}, n_samples=100
    )
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    # Per schedule: the mean with its t-interval, then the inner bar of the sample noise.
    assert len(ax.containers) == 2 * len(SCHEDULES)
    expected = runs.groupby(["schedule", "T"])["classifier_fid"]
    t_factor = scipy_stats.t.ppf(0.975, 2) / np.sqrt(3)
    for i, schedule in enumerate(SCHEDULES):
        outer, inner = ax.containers[2 * i], ax.containers[2 * i + 1]
        assert outer.get_label() == f"{schedule} (n = 3 seeds)"
        np.testing.assert_allclose(
            outer.lines[0].get_ydata(), expected.mean().loc[schedule].to_numpy()
        )
        sds = np.array([np.std(expected.get_group((schedule, t)), ddof=1) for t in T_VALUES])
        np.testing.assert_allclose(_half_heights(outer), t_factor * sds)
        # root mean square of the seeds' bootstrap sds 1.0, 1.1, 1.2
        np.testing.assert_allclose(
            _half_heights(inner), t_factor * np.sqrt(np.mean([1.0, 1.21, 1.44]))
        )
    floor_lines = [line for line in ax.get_lines() if line.get_label().startswith("real vs real")]
    assert len(floor_lines) == 1 and floor_lines[0].get_ydata()[0] == pytest.approx(3.0)
    assert "n = 100" in floor_lines[0].get_label()
    assert "95 % t-interval" in ax.get_legend().get_title().get_text()
    _saved_png(fig, tmp_path, "fid_vs_T")


def test_metric_figure_draws_the_floor_band_from_its_bootstrap(runs):
    floor = {
        "n_generated": 200,
        "classifier_fid": 3.0,
        "classifier_fid_boot_sd": 0.5,
    }
    ax = plot_metric_vs_T_with_floor(runs, floor, "classifier_fid").axes[0]
    (band,) = [p for p in ax.patches if p.get_alpha() == pytest.approx(0.15)]
    corners = band.get_transform().transform(band.get_path().vertices)
    data_y = ax.transData.inverted().transform(corners)[:, 1]
    assert min(data_y) == pytest.approx(2.02) and max(data_y) == pytest.approx(3.98)


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


def test_summary_table_puts_the_interval_and_both_spreads_side_by_side():
    runs = pd.DataFrame(
        {
            "dataset": "mnist5k",
            "schedule": ["linear"] * 3 + ["cosine"] * 2 + ["cosine"],
            "T": [50, 50, 50, 50, 50, 100],
            "seed": [0, 1, 2, 0, 1, 0],
            # linear T=50: mean 20.0, sd 0.954, t(0.975, 2) * sd / sqrt(3) = 2.37
            "classifier_fid": [20.1, 20.9, 19.0, 0.001, 0.0015, 123.456],
            "classifier_fid_boot_sd": [0.3, 0.4, 0.5, np.nan, np.nan, 2.0],
            "classifier_kid_mean": [0.5, 0.6, 0.7, 0.1, 0.2, 0.3],
            "inception_fid": np.nan,
        }
    )
    table = metrics_summary_table(runs, ["classifier_fid", "classifier_kid_mean", "inception_fid"])
    assert list(table.index) == [
        ("mnist5k", "linear", 50),
        ("mnist5k", "cosine", 50),
        ("mnist5k", "cosine", 100),
    ]  # palette order
    fid = "FID, classifier features"
    assert list(table.columns[:4]) == [
        "seeds",
        f"{fid}: mean [95 % CI]",
        f"{fid}: sd over seeds",
        f"{fid}: sd over samples",
    ]
    assert table.columns[4].startswith("KID")  # KID next to FID
    linear = table.loc[("mnist5k", "linear", 50)]
    assert linear[f"{fid}: mean [95 % CI]"] == "20.0 [17.6, 22.4]"
    assert linear[f"{fid}: sd over seeds"] == "0.95"
    assert linear[f"{fid}: sd over samples"] == "0.41"  # sqrt(mean(0.09, 0.16, 0.25))
    assert linear["seeds"] == 3
    one_seed = table.loc[("mnist5k", "cosine", 100)]
    assert one_seed[f"{fid}: mean [95 % CI]"] == "123"  # one seed: no interval
    assert table.loc[("mnist5k", "cosine", 50), f"{fid}: sd over samples"] == "–"
    assert (table["FID, inception features: mean [95 % CI]"] == "–").all()


def test_missing_run_columns_are_named():
    with pytest.raises(ValueError, match="seed"):
        plot_metric_vs_T(pd.DataFrame({"dataset": [], "schedule": [], "T": []}), "x")


def test_metric_labels():
    assert metric_label("classifier_fid") == "FID, classifier features (lower is better)"
    assert metric_label("inception_is_mean") == "IS, inception features (higher is better)"
    assert metric_label("final_loss") == "final loss"
