"""The report opens with the answers: slopes, best schedule per T, verdicts, the best cell."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ddpm.report.build import DatasetResults, StudyGrid, build_report, read_dataset_results
from ddpm.workflow.figures import FIGURES


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
    # T = 1000 is a schedule-curve T, not one of the grid's.
    schedule_table = pd.DataFrame(
        {
            "schedule": ["linear"] * 3,
            "beta_schedule": ["linear"] * 3,
            "T": [50, 50, 1000],
            "t": [1, 2, 1],
            "params": ['{"beta_end": 0.02}'] * 3,
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


class _Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None


def _tables(page: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(page)
    return parser.tables


def _table_with(page: str, header: str) -> pd.DataFrame:
    (rows,) = [t for t in _tables(page) if t and header in t[0]]
    return pd.DataFrame(rows[1:], columns=rows[0])


def test_every_figure_carries_its_registry_caption(study, tmp_path):
    page = build_report(tmp_path / "report.html", **study).read_text()
    for name in ("best_cell", "classifier_fid_vs_T", "loss_curves"):
        caption = html.escape(FIGURES[name].caption)
        assert f'alt="{name}"><figcaption>{caption}</figcaption>' in page, name


def test_the_answer_tables_hold_the_numbers_of_the_runs(study, tmp_path):
    page = build_report(tmp_path / "report.html", **study).read_text()
    runs = synthetic_runs()
    means = runs.groupby(["T", "schedule"])["classifier_fid"].mean().unstack()
    best = _table_with(page, "runner-up")
    assert best["T"].astype(int).tolist() == sorted(means.index)
    assert best["best"].tolist() == [means.loc[T].idxmin() for T in sorted(means.index)]
    for row in best.itertuples():
        mean = means.loc[int(row.T), row.best]
        shown = float(row[3].split(" [")[0])  # "FID [95 % CI]"
        assert shown == pytest.approx(mean, abs=0.051), row.T
    cell = _table_with(page, "real data at the same n")
    assert cell["real data at the same n"].tolist() == ["9", "5"]  # the floor's IS and FID
    assert cell["threshold"].tolist() == ["7.2", "15"]  # 0.8 x IS, 3 x FID


def test_the_grid_section_describes_the_grid_and_its_schedules(study, tmp_path):
    page = build_report(tmp_path / "report.html", **study).read_text()
    assert "3 runs per dataset, 10 training steps each, 200 samples per run" in page
    schedules = _table_with(page, "beta_schedule")
    assert schedules.to_dict("records") == [
        {"schedule": "linear", "beta_schedule": "linear", "T": "50", "params": '{"beta_end": 0.02}'}
    ]


def test_a_failed_write_leaves_the_previous_page(study, tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    out.write_text("the previous report")
    real_write_text = Path.write_text

    def write_half_then_fail(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("the disk went away")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="disk went away"):
        build_report(out, **study)
    monkeypatch.undo()
    assert out.read_text() == "the previous report"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".report")) == []


def test_a_figure_outside_the_registry_is_refused(study, tmp_path):
    (figure,) = study["datasets"]
    unknown = DatasetResults(figure.name, figure.runs, figure.floor, 0.9, {"mystery": "x.png"})
    with pytest.raises(ValueError, match="mystery.*ddpm.workflow.figures.FIGURES"):
        build_report(tmp_path / "report.html", **{**study, "datasets": [unknown]})


# --- seed 004's experiments and figures without data --------------------------------------------
def _coding_tables(T: int = 20) -> pd.DataFrame:
    """Rate-distortion tables of three seeds per schedule: most rate in the last steps."""
    rows = []
    for schedule in ("linear", "cosine"):
        for seed in range(3):
            rate = np.cumsum([0.01] + [0.001 * (seed + 1)] * (T - 3) + [0.2, 0.3, 1.5])
            for t, r, d in zip(range(T, -1, -1), rate, np.linspace(80.0, 0.5, T + 1), strict=True):
                rows.append(
                    {
                        "dataset": "mnist5k",
                        "schedule": schedule,
                        "T": T,
                        "seed": seed,
                        "prediction": "eps",
                        "t": t,
                        "t_over_T": t / T,
                        "rate_bits_per_dim": r,
                        "distortion_rmse": d,
                        "images": 50,
                    }
                )
    return pd.DataFrame(rows)


def test_the_coding_section_shows_the_figure_the_shares_and_the_verdicts(study, tmp_path):
    (results,) = study["datasets"]
    png = tmp_path / "rate_distortion.png"
    Image.new("RGB", (8, 8)).save(png)
    coded = DatasetResults(
        results.name,
        results.runs,
        results.floor,
        0.9,
        {**results.figures, "rate_distortion": png},
        _coding_tables(),
    )
    page = build_report(tmp_path / "report.html", **{**study, "datasets": [coded]}).read_text()
    section = page[page.index("mnist5k: progressive coding") :]
    assert 'alt="rate_distortion"' in section and "50 held-out test images" in section
    (rows,) = [t for t in _tables(page) if t and {"schedule", "claim"} <= set(t[0])]
    verdicts = pd.DataFrame(rows[1:], columns=rows[0])
    assert verdicts["schedule"].tolist() == ["linear", "linear", "cosine", "cosine"]
    rate = verdicts[verdicts["claim"] == "most of the rate goes to the last 10 % of the steps"]
    assert rate["verdict"].tolist() == ["holds", "holds"]
    shares = _table_with(page, "rate in the last 10 % of steps (%)")
    assert shares["seeds"].tolist() == ["3", "3"]
    assert all(" [" in cell for cell in shares["bound (bits/dim)"])


def test_a_figure_of_a_metric_no_run_has_is_left_out_with_a_line_why(study, tmp_path):
    (results,) = study["datasets"]
    png = tmp_path / "inception_fid_vs_T.png"
    Image.new("RGB", (8, 8)).save(png)
    offline = DatasetResults(
        results.name, results.runs, results.floor, 0.9, {**results.figures, png.stem: png}
    )
    page = build_report(tmp_path / "report.html", **{**study, "datasets": [offline]}).read_text()
    assert 'alt="inception_fid_vs_T"' not in page
    assert "Left out for lack of data: inception_fid_vs_T" in page
    assert "resources/inception/" in page and "offline" in page
    # A figure whose metric the runs have is shown.
    assert 'alt="classifier_fid_vs_T"' in page


def test_a_study_of_prediction_targets_gets_its_verdict_section(study, tmp_path):
    (results,) = study["datasets"]
    runs = results.runs[results.runs["T"] == 800].copy()
    runs["prediction"] = runs["schedule"].map({"linear": "eps", "cosine": "x0", "sigmoid": "v"})
    runs["beta_schedule"] = "cosine"
    targets = DatasetResults(results.name, runs, results.floor, 0.9, results.figures)
    page = build_report(tmp_path / "report.html", **{**study, "datasets": [targets]}).read_text()
    sections = re.findall(r'<h2 id="s\d+">([^<]*)</h2>', page)
    assert sections[:2] == ["Answers", "mnist5k: the prediction target"]
    table = _table_with(page, "label")
    assert table["prediction"].tolist() == ["eps", "x0", "v"]
    claims = [
        row[0]
        for table in _tables(page)
        if table and table[0][:2] == ["claim", "verdict"]
        for row in table[1:]
        if "predicting eps" in row[0]
    ]
    assert [claim.rsplit(" ", 1)[1] for claim in claims] == ["v", "x0", "alternative"]
    # A study of schedules alone has no such section.
    plain = build_report(tmp_path / "plain.html", **study).read_text()
    assert "the prediction target" not in plain
