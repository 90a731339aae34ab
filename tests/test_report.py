"""The report opens with the answers: slopes, best schedule per T, verdicts, the best cell."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ddpm.report import build_report


@pytest.fixture
def study(tmp_path):
    """The files of a finished study: 3 schedules x 5 T x 3 seeds, FID falling with T."""
    rng = np.random.default_rng(0)
    dataset = tmp_path / "results" / "mnist5k"
    dataset.mkdir(parents=True)
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
    pd.DataFrame(rows).to_csv(dataset / "metrics.csv", index=False)
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
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"reason": "offline"}))
    figures = tmp_path / "results" / "figures" / "mnist5k"
    figures.mkdir(parents=True)
    paths = []
    for stem in ("best_cell", "classifier_fid_vs_T", "loss_curves"):
        Image.new("RGB", (8, 8)).save(figures / f"{stem}.png")
        paths.append(str(figures / f"{stem}.png"))
    pd.DataFrame({"finding": ["closest at t = 400"], "ours": [410]}).to_csv(
        tmp_path / "comparison.csv", index=False
    )
    pd.DataFrame({"image_size": [8], "t": [300]}).to_csv(tmp_path / "closest.csv", index=False)
    config = {
        "datasets": {"mnist5k": {}},
        "grid": {"schedules": ["linear"], "T": [50], "seeds": [0, 1, 2]},
        "schedules": {"linear": {"beta_schedule": "linear"}},
        "training": {"steps": 10},
        "sampling": {"num_samples": 200},
    }
    return {
        "config": config,
        "metrics_tables": [str(dataset / "metrics.csv")],
        "floors": [str(dataset / "floor.json")],
        "classifiers": [str(dataset / "classifier.json")],
        "inception_status": str(status),
        "figures": paths,
        "thesis_figures": [],
        "closest_points": str(tmp_path / "closest.csv"),
        "thesis_comparison": str(tmp_path / "comparison.csv"),
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
