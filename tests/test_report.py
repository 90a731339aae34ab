"""The report opens with the answers: slopes, best schedule per T, verdicts, the best cell."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ddpm.report import StudyGrid, build_report, read_dataset_results


def synthetic_runs() -> pd.DataFrame:
    """3 schedules x 5 T x 3 seeds, FID falling by 5 per doubling of T."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "dataset": "mnist5k",
            "schedule": schedule,
            "T": t,
            "seed": seed,
            "final_loss": 0.05 + 0.001 * rng.normal(),
            "classifier_fid": 40 - 5 * np.log2(t / 50) + rng.normal(0, 1),
            "classifier_fid_boot_sd": 0.5,
            "classifier_kid_mean": 0.1 + 0.01 * rng.normal(),
            "classifier_is_mean": 7.5 + 0.1 * rng.normal(),
            "bootstrap_resamples": 100,
            "inception_fid": np.nan,
        }
        for schedule in ("linear", "cosine", "sigmoid")
        for t in (50, 100, 200, 400, 800)
        for seed in range(3)
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def study(tmp_path):
    """The built inputs of a finished study's report, written as the workflow writes them."""
    dataset = tmp_path / "results" / "mnist5k"
    dataset.mkdir(parents=True)
    synthetic_runs().to_csv(dataset / "metrics.csv", index=False)
    floor = {
        "n_generated": 200,
        "classifier_fid": 5.0,
        "classifier_fid_boot_sd": 0.5,
        "classifier_is_mean": 9.0,
        "classifier_kid_mean": 0.001,
        "inception_fid": None,  # not computed: metrics.json writes NaN as null
    }
    (dataset / "floor.json").write_text(json.dumps(floor))
    (dataset / "classifier.json").write_text(json.dumps({"test_accuracy": 0.97}))
    figures = tmp_path / "results" / "figures" / "mnist5k"
    figures.mkdir(parents=True)
    paths = []
    for stem in ("best_cell", "classifier_fid_vs_T", "loss_curves"):
        Image.new("RGB", (8, 8)).save(figures / f"{stem}.png")
        paths.append(str(figures / f"{stem}.png"))
    results = read_dataset_results(
        dataset / "metrics.csv", dataset / "floor.json", dataset / "classifier.json", paths
    )
    schedule_table = pd.DataFrame(
        {
            "schedule": ["linear"] * 2,
            "beta_schedule": ["linear"] * 2,
            "T": [50, 50],
            "t": [1, 2],
            "params": ['{"beta_end": 0.02}'] * 2,
        }
    )
    grid = StudyGrid(
        datasets=["mnist5k"],
        schedules=["linear"],
        T=[50],
        seeds=[0, 1, 2],
        training_steps=10,
        num_samples=200,
        sampler="ancestral",
    )
    return {
        "grid": grid,
        "datasets": [results],
        "schedule_table": schedule_table,
        "closest_points": pd.DataFrame({"image_size": [8], "t": [300]}),
        "thesis_comparison": pd.DataFrame({"finding": ["closest at t = 400"], "ours": [410]}),
        "inception_note": "offline",
        "configuration": {"training": {"steps": 10}},
    }


def test_the_report_opens_with_the_answers(study, tmp_path):
    page = build_report(tmp_path / "report.html", **study).read_text()
    sections = re.findall(r'<h2 id="s\d+">([^<]*)</h2>', page)
    assert sections[0] == "Answers"
    answers = page[page.index('<h2 id="s0">') : page.index('<h2 id="s1">')]
    # FID falls by 5 per doubling of T: the slope table says so, and T matters.
    assert "falls as T grows" in answers
    assert "T has little effect on image quality" in answers and "does not hold" in answers
    for claim in ("loss is nearly the same", "sigmoid", "cosine", "does not predict"):
        assert claim in answers
    assert "Student-t interval with n = 3 seeds" in answers and "100 resamples" in answers
    # The thesis comparison is in the summary, the best cell's grid and bars too.
    assert "closest at t = 400" in answers
    assert 'alt="best_cell"' in answers
    assert "IS ≥ 0.8 × real IS" in answers and "<b>pass</b>" in answers
    # FID of the best cell (T = 800, about 20) is above 3 x the floor (15).
    assert "<b>fail</b>" in answers
    # The quality figures come after the answers, not in them.
    assert 'alt="classifier_fid_vs_T"' in page and 'alt="classifier_fid_vs_T"' not in answers
    assert page.count('alt="best_cell"') == 1


def test_the_quality_table_shows_both_spreads(study, tmp_path):
    page = build_report(tmp_path / "report.html", **study).read_text()
    assert "FID, classifier features: sd over samples" in page
    assert "real vs real [± 1.96 bootstrap sd]" in page and "5.00 [4.02, 5.98]" in page
