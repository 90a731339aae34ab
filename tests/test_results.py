"""The per-cell table every figure and the answer table read."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ddpm import DataError
from ddpm.report.page import table_html
from ddpm.results import cell_summary, collect_runs, read_benchmarks


def test_cell_summary_separates_the_seed_spread_from_the_sample_spread():
    runs = pd.DataFrame(
        {
            "dataset": "d",
            "schedule": ["linear"] * 4 + ["cosine"],
            "T": [50, 50, 50, 50, 50],
            "seed": [0, 1, 2, 3, 0],
            "classifier_fid": [10.0, 12.0, 11.0, 13.0, 30.0],
            "classifier_fid_boot_sd": [1.0, 1.0, 2.0, 2.0, 0.5],
        }
    )
    cells = cell_summary(runs, ["classifier_fid", "not_a_column"]).set_index("schedule")
    linear = cells.loc["linear"]
    assert linear["n"] == 4 and linear["mean"] == pytest.approx(11.5)
    lo, hi = scipy_stats.t.interval(0.95, 3, loc=11.5, scale=scipy_stats.sem([10, 12, 11, 13]))
    assert (linear["lo"], linear["hi"]) == pytest.approx((lo, hi))
    assert linear["sample_sd"] == pytest.approx(math.sqrt(2.5))  # root mean square of 1, 1, 2, 2
    assert linear["sample_half"] == pytest.approx(scipy_stats.t.ppf(0.975, 3) * math.sqrt(2.5) / 2)
    cosine = cells.loc["cosine"]  # one seed: a mean, no interval
    assert cosine["n"] == 1 and math.isnan(cosine["lo"]) and math.isnan(cosine["sample_half"])
    assert set(cells["metric"]) == {"classifier_fid"}


def test_cell_summary_without_bootstrap_columns_has_no_sample_spread():
    runs = pd.DataFrame(
        {"dataset": "d", "schedule": "linear", "T": 50, "seed": [0, 1], "m": [1.0, 2.0]}
    )
    (row,) = cell_summary(runs, ["m"]).itertuples()
    assert row.n == 2 and np.isnan(row.sample_sd)


# --- the run table --------------------------------------------------------------------------
def _write_run(run_dir, label, T, seed, metrics, losses, dataset="digits"):
    run_dir.mkdir(parents=True)
    record = {
        "dataset": dataset,
        "schedule": {"label": label, "beta_schedule": "linear", "T": T, "params": {"b": 1}},
        "seed": seed,
        "parameter_count": 1234,
        "wall_seconds": 5.5,
    }
    (run_dir / "run.json").write_text(json.dumps(record))
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "nested": {"x": 1}}))
    pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses}).to_csv(
        run_dir / "train_log.csv", index=False
    )
    return [run_dir / name for name in ("metrics.json", "run.json", "train_log.csv")]


def _collect(*runs):
    metrics, records, logs = zip(*runs, strict=True)
    return collect_runs(metrics, records, logs)


def test_run_table_reads_identifiers_from_the_record_and_values_from_each_file(tmp_path):
    runs = tmp_path / "results" / "digits" / "runs"
    # A renamed directory still reports the label its record gives.
    a = _write_run(runs / "renamed-by-hand", "lin-scaled", 50, 1, {"fid": 3.5}, [4.0] * 9 + [2.0])
    b = _write_run(runs / "lin-scaled-T50-seed0", "lin-scaled", 50, 0, {"fid": 1.5}, [1.0, 3.0])
    table = _collect(a, b)
    assert list(table.columns[:4]) == ["dataset", "schedule", "T", "seed"]
    assert table[["schedule", "T", "seed"]].values.tolist() == [
        ["lin-scaled", 50, 0],
        ["lin-scaled", 50, 1],
    ]
    assert table["fid"].tolist() == [1.5, 3.5] and "nested" not in table.columns
    # The final loss is the mean of the last tenth of the log, at least one row.
    assert table["final_loss"].tolist() == [3.0, 2.0]
    assert table["beta_schedule"].tolist() == ["linear", "linear"]
    assert table["schedule_params"].iloc[0] == '{"b": 1}'
    assert table["parameters"].tolist() == [1234, 1234] and table["train_seconds"].iloc[0] == 5.5


def test_run_table_needs_each_runs_record(tmp_path):
    metrics, _, _ = _write_run(tmp_path / "run", "lin", 50, 0, {"fid": 1.0}, [1.0])
    with pytest.raises(DataError, match="no run record .* pass .*run.json in record_paths"):
        collect_runs([metrics], [])


def test_benchmarks_of_runs_and_of_cells(tmp_path):
    # Training runs one job per run; sampling and scoring one job per cell (all seeds).
    header = "s\th:m:s\tmax_rss\n"
    paths = {
        "train/cosine-T50-seed2.tsv": "12.5\t0:00:12\t310.2\n",
        "sample/cosine-T50.tsv": "30.0\t0:00:30\t-\n",
    }
    for name, row in paths.items():
        path = tmp_path / "results" / "digits" / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + row)
    table = read_benchmarks(sorted(tmp_path.glob("results/digits/benchmarks/*/*.tsv")))
    rows = table.set_index("step")
    train = rows.loc["train"]
    assert (train["schedule"], train["T"], train["seed"], train["seconds"]) == (
        "cosine",
        50,
        2,
        12.5,
    )
    assert rows.loc["train", "max_rss_mb"] == pytest.approx(310.2)
    sample = rows.loc["sample"]
    assert (sample["schedule"], sample["T"], sample["seconds"]) == ("cosine", 50, 30.0)
    assert pd.isna(sample["seed"]) and math.isnan(sample["max_rss_mb"])
    # A run's seed stays an integer beside a cell's missing one, and the report shows it so.
    assert str(table["seed"].dtype) == "Int64"
    shown = table_html(table[["step", "seed"]])
    assert "<td>2</td>" in shown and "<td>–</td>" in shown and "2.0" not in shown
    assert set(table["dataset"]) == {"digits"}


def test_the_prediction_target_is_a_column_only_where_runs_differ_in_it(tmp_path):
    runs = tmp_path / "results" / "digits" / "runs"
    paths = [
        _write_run(runs / f"lin-T50-seed{seed}", "lin", 50, seed, {"fid": 1.0}, [1.0])
        for seed in (0, 1)
    ]
    assert "prediction" not in _collect(*paths).columns  # a study of schedules: as before
    for (_, record, _), target in zip(paths, ("eps", "x0"), strict=True):
        content = json.loads(record.read_text())
        record.write_text(json.dumps({**content, "diffusion": {"prediction": target}}))
    assert _collect(*paths)["prediction"].tolist() == ["eps", "x0"]
