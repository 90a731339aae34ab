"""The figures of trained runs, drawn from small synthetic run files as the workflow hands
them over: what is drawn is what the files hold."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ddpm.sampling import image_grid, save_samples
from ddpm.workflow.figures import draw_figure

SCHEDULES = ("linear", "cosine")
STEPS = (25, 50)


def _run_dir(root, schedule, T, seed=0):
    """A run's directory with the part of its record that says which run it is."""
    path = root / "results" / "digits" / "runs" / f"{schedule}-T{T}-seed{seed}"
    path.mkdir(parents=True, exist_ok=True)
    record = {"dataset": "digits", "schedule": {"label": schedule, "T": T}, "seed": seed}
    (path / "run.json").write_text(json.dumps(record))
    return path


@pytest.fixture
def train_logs(tmp_path):
    """One train_log.csv per run; each run's loss is its own, so lines can be told apart."""
    paths = []
    for i, (schedule, T) in enumerate((s, t) for s in SCHEDULES for t in STEPS):
        loss = np.linspace(1.0, 0.1, 12) * (i + 1)
        log = pd.DataFrame({"step": np.arange(1, 13), "loss": loss, "lr": 1e-3})
        log.to_csv(_run_dir(tmp_path, schedule, T) / "train_log.csv", index=False)
        paths.append(str(_run_dir(tmp_path, schedule, T) / "train_log.csv"))
    return paths


def test_loss_curves_draw_the_smoothed_loss_of_each_run(train_logs):
    fig = draw_figure("loss_curves", {"runs": train_logs})
    panels = sorted(SCHEDULES)  # the logs are sorted by schedule before drawing
    assert [ax.get_title() for ax in fig.axes[:2]] == panels
    for ax, schedule in zip(fig.axes[:2], panels, strict=True):
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 12]
        assert len(lines) == len(STEPS)
        for line, T in zip(lines, STEPS, strict=True):
            log = pd.read_csv(train_logs[SCHEDULES.index(schedule) * 2 + STEPS.index(T)])
            expected = log["loss"].rolling(5, min_periods=1).mean()
            np.testing.assert_allclose(line.get_ydata(), expected)
            np.testing.assert_array_equal(line.get_xdata(), log["step"])
    plt.close(fig)


def _images(value, n=4, size=4):
    return np.full((n, 1, size, size), value, dtype=np.uint8)


def test_sample_grids_show_each_cells_samples(tmp_path):
    paths = []
    for i, (schedule, T) in enumerate((s, t) for s in SCHEDULES for t in STEPS):
        paths.append(
            str(save_samples(_run_dir(tmp_path, schedule, T) / "samples.npz", _images(10 * i)))
        )
    fig = draw_figure("sample_grids", {"runs": paths}, {"count": 2})
    axes = np.array(fig.axes).reshape(len(SCHEDULES), len(STEPS))
    for i, schedule in enumerate(SCHEDULES):
        assert axes[i][0].get_ylabel() == schedule
        for j in range(len(STEPS)):
            expected = image_grid(_images(10 * (i * 2 + j))[:2], 1, padding=1, pad_value=255)
            np.testing.assert_array_equal(axes[i][j].images[0].get_array(), expected[..., 0])
    assert [ax.get_title() for ax in axes[0]] == [f"T = {T}" for T in STEPS]
    plt.close(fig)


def test_training_progress_shows_the_largest_T_of_each_schedule(tmp_path):
    paths = []
    for schedule in SCHEDULES:
        for T in STEPS:
            path = _run_dir(tmp_path, schedule, T) / "snapshots.npz"
            images = np.stack([_images(T), _images(T + 1)])
            np.savez(path, steps=np.array([5, 10]), images=images)
            paths.append(str(path))
    fig = draw_figure("training_progress", {"runs": paths})
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == [f"{schedule} (T=50)" for schedule in SCHEDULES]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["step 5", "step 10"]
    assert fig.axes[1].images[0].get_array()[1, 1] == 51  # the T = 50 run's second snapshot
    plt.close(fig)


def test_reconstruction_shows_originals_and_each_t(tmp_path):
    path = _run_dir(tmp_path, "linear", 50) / "reconstruction.npz"
    originals = _images(200, n=2)
    recon = np.stack([_images(100, n=2), _images(50, n=2)])
    np.savez(path, t=np.array([5, 25]), originals=originals, reconstructions=recon)
    fig = draw_figure("reconstruction", {"runs": [str(path)]})
    assert [ax.get_title() for ax in fig.axes] == ["original", "from t = 5", "from t = 25"]
    assert fig.axes[0].get_ylabel() == "linear (T=50)"
    shown = [ax.images[0].get_array() for ax in fig.axes]
    assert [int(image[1, 1]) for image in shown] == [200, 100, 50]
    plt.close(fig)


def test_metric_figure_draws_the_metrics_table_and_its_floor(tmp_path):
    from test_report import synthetic_runs

    synthetic_runs().to_csv(tmp_path / "metrics.csv", index=False)
    floor = {"n_generated": 200, "classifier_fid": 5.0, "classifier_fid_boot_sd": 0.5}
    (tmp_path / "floor.json").write_text(json.dumps(floor))
    inputs = {"metrics": str(tmp_path / "metrics.csv"), "floor": str(tmp_path / "floor.json")}
    ax = draw_figure("classifier_fid_vs_T", inputs).axes[0]
    (floor_line,) = [line for line in ax.get_lines() if line.get_label().startswith("real vs real")]
    assert floor_line.get_ydata()[0] == 5.0 and "n = 200" in floor_line.get_label()
    assert ax.get_ylabel().startswith("FID, classifier features")
    plt.close("all")
