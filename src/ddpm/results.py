"""The tidy tables built from the results.

A run's directory (:data:`ddpm.workflow.layout.RUN_DIR`) holds its record, ``run.json``, which
says what the run is (:func:`run_of`); :func:`collect_runs` turns the files of many runs into
one table, one row per run, which every figure and the report read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import DataError
from .workflow.layout import RUN_RECORD, job_of_benchmark, run_directory

__all__ = ["cell_summary", "collect_runs", "final_loss", "read_benchmarks", "run_of"]


def run_of(path: str | Path) -> dict:
    """dataset, schedule label, T and seed of the run a file belongs to, from the run's record."""
    record_path = run_directory(path) / RUN_RECORD
    return _run_identifiers(record_path, json.loads(record_path.read_text()))


def final_loss(train_log: pd.DataFrame, fraction: float = 0.1) -> float:
    """Mean training loss over the last ``fraction`` of the logged steps (at least one row)."""
    if train_log.empty:
        return float("nan")
    tail = max(1, round(len(train_log) * fraction))
    return float(train_log["loss"].iloc[-tail:].mean())


def _run_identifiers(record_path: Path, record: dict) -> dict:
    """dataset, schedule label, T and seed of a run, as its record states them."""
    schedule = record.get("schedule") or {}
    if "T" not in schedule or "label" not in schedule or "seed" not in record:
        raise DataError(
            f"{record_path} is not a run record of this version (it lacks the schedule's T or "
            "label, or the seed): train the run again"
        )
    return {
        "dataset": record.get("dataset"),
        "schedule": schedule["label"],
        "T": int(schedule["T"]),
        "seed": record["seed"],
    }


def collect_runs(
    metrics_paths: Sequence[str | Path],
    record_paths: Sequence[str | Path],
    train_log_paths: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """One row per run: identifiers, schedule definition, final loss, run time and every metric
    (and ``prediction``, what the network predicts, where the runs do not all predict the same).

    The identifiers (dataset, schedule label, T, seed) come from each run's record
    (``run.json``); the metrics and training log of a run are the files in its directory.
    """
    rows: dict[Path, dict] = {}
    described: dict[Path, dict] = {}
    predictions: dict[Path, str | None] = {}
    for path in record_paths:
        path = Path(path)
        record = json.loads(path.read_text())
        schedule = record.get("schedule", {})
        rows[path.parent.resolve()] = _run_identifiers(path, record)
        described[path.parent.resolve()] = {
            "beta_schedule": schedule.get("beta_schedule"),
            "schedule_params": json.dumps(schedule.get("params", {}), sort_keys=True),
            "parameters": record.get("parameter_count"),
            "precision": record.get("precision"),
            "train_seconds": record.get("wall_seconds"),
        }
        predictions[path.parent.resolve()] = (record.get("diffusion") or {}).get("prediction")
    # What the networks predict is a column only where the runs differ in it (a study of the
    # target, config/prediction.yaml): a study of schedules keeps the table it always had.
    if len(set(predictions.values())) > 1:
        for run_dir, prediction in predictions.items():
            described[run_dir]["prediction"] = prediction

    def row_for(path) -> dict:
        run_dir = Path(path).parent.resolve()
        if run_dir not in rows:
            raise DataError(
                f"no run record for {path}: pass {run_dir / 'run.json'} in record_paths "
                "(the record names the run's dataset, schedule, T and seed)"
            )
        return rows[run_dir]

    for path in metrics_paths:
        metrics = json.loads(Path(path).read_text())
        row_for(path).update({k: v for k, v in metrics.items() if not isinstance(v, dict | list)})
    # Metrics first, then the record's description: the column order of the table.
    for run_dir, description in described.items():
        rows[run_dir].update(description)
    for path in train_log_paths:
        row_for(path)["final_loss"] = final_loss(pd.read_csv(path))
    table = pd.DataFrame(list(rows.values()))
    if table.empty:
        return table
    first = ["dataset", "schedule", "T", "seed"]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.sort_values(first, ignore_index=True)


def read_benchmarks(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Snakemake benchmark files of ``results/{dataset}/benchmarks/{step}/{job}.tsv`` as one table.

    A job is a run (``{schedule}-T{T}-seed{seed}``: training) or a cell of the grid
    (``{schedule}-T{T}``: sampling and scoring, all seeds in one job; its seed is left empty).
    """
    rows = []
    for path in paths:
        bench = pd.read_csv(path, sep="\t")
        row = {
            **job_of_benchmark(path),
            "seconds": float(bench["s"].iloc[0]),
            # Snakemake writes "-" where it could not measure memory.
            "max_rss_mb": pd.to_numeric(
                bench.get("max_rss", pd.Series([None])), errors="coerce"
            ).iloc[0],
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    if "seed" in table:  # a cell's jobs have no seed: keep the runs' seeds integers
        table["seed"] = table["seed"].astype("Int64")
    return table


def cell_summary(runs: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (dataset, schedule, T, metric): the spread over seeds and over samples.

    Columns: ``n`` (seeds with a value), ``mean``, ``sd`` (between seeds), ``lo`` / ``hi`` (95 %
    Student-t interval of the mean over the n seeds), ``sample_sd`` (the within-run bootstrap
    spread, root mean square over the seeds; NaN where the runs carry none) and ``sample_half``
    (the half-width the sample noise alone gives the mean: t * sample_sd / sqrt(n)). When
    ``sample_half`` is close to the interval's half-width, the seeds differ by measurement noise
    only; when it is much smaller, by training.
    """
    from scipy import stats as scipy_stats

    from .stats import t_interval

    rows = []
    for (dataset, schedule, t), group in runs.groupby(["dataset", "schedule", "T"], sort=False):
        for metric in metrics:
            if metric not in group.columns:
                continue
            interval = t_interval(group[metric])
            boot = f"{metric}_boot_sd"
            sample_sd = (
                float(np.sqrt(np.nanmean(group[boot].to_numpy(dtype=float) ** 2)))
                if boot in group.columns and group[boot].notna().any()
                else float("nan")
            )
            n = interval["n"]
            factor = scipy_stats.t.ppf(0.975, n - 1) / np.sqrt(n) if n > 1 else float("nan")
            rows.append(
                {
                    "dataset": dataset,
                    "schedule": schedule,
                    "T": int(t),
                    "metric": metric,
                    **{k: interval[k] for k in ("n", "mean", "sd", "lo", "hi")},
                    "sample_sd": sample_sd,
                    "sample_half": sample_sd * factor,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "schedule",
            "T",
            "metric",
            "n",
            "mean",
            "sd",
            "lo",
            "hi",
            "sample_sd",
            "sample_half",
        ],
    )
