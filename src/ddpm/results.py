"""The results layout and the tidy tables built from it.

A run (one grid cell) lives in ``results/{dataset}/runs/{schedule}-T{T}-seed{seed}/``.
:func:`collect_runs` turns the files of many runs into one table, one row per run,
which every figure and the report read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["collect_runs", "final_loss", "parse_run_dir", "read_benchmarks"]

_RUN_DIR = re.compile(r"(?P<schedule>[A-Za-z0-9_]+)-T(?P<T>\d+)-seed(?P<seed>\d+)$")


def parse_run_dir(path: str | Path) -> dict:
    """``results/{dataset}/runs/{schedule}-T{T}-seed{seed}[/file]`` -> its identifiers."""
    path = Path(path)
    run_dir = path if _RUN_DIR.match(path.name) else path.parent
    match = _RUN_DIR.match(run_dir.name)
    if match is None or run_dir.parent.name != "runs":
        raise ValueError(
            f"{path} is not inside a run directory results/<dataset>/runs/<schedule>-T<T>-seed<seed>"
        )
    return {
        "dataset": run_dir.parent.parent.name,
        "schedule": match["schedule"],
        "T": int(match["T"]),
        "seed": int(match["seed"]),
    }


def final_loss(train_log: pd.DataFrame, fraction: float = 0.1) -> float:
    """Mean training loss over the last ``fraction`` of the logged steps (at least one row)."""
    if train_log.empty:
        return float("nan")
    tail = max(1, round(len(train_log) * fraction))
    return float(train_log["loss"].iloc[-tail:].mean())


def collect_runs(
    metrics_paths: Sequence[str | Path],
    record_paths: Sequence[str | Path] = (),
    train_log_paths: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """One row per run: identifiers, schedule definition, final loss, run time and every metric."""
    rows: dict[tuple, dict] = {}

    def row_for(path) -> dict:
        run = parse_run_dir(path)
        key = (run["dataset"], run["schedule"], run["T"], run["seed"])
        return rows.setdefault(key, dict(run))

    for path in metrics_paths:
        metrics = json.loads(Path(path).read_text())
        row_for(path).update({k: v for k, v in metrics.items() if not isinstance(v, dict | list)})
    for path in record_paths:
        record = json.loads(Path(path).read_text())
        row = row_for(path)
        schedule = record.get("schedule", {})
        row["beta_schedule"] = schedule.get("beta_schedule")
        row["schedule_params"] = json.dumps(schedule.get("params", {}), sort_keys=True)
        row["parameters"] = record.get("parameter_count")
        row["train_seconds"] = record.get("wall_seconds")
    for path in train_log_paths:
        row_for(path)["final_loss"] = final_loss(pd.read_csv(path))
    table = pd.DataFrame(list(rows.values()))
    if table.empty:
        return table
    first = ["dataset", "schedule", "T", "seed"]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.sort_values(first, ignore_index=True)


def read_benchmarks(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Snakemake benchmark files of ``results/{dataset}/benchmarks/{step}/{run}.tsv`` as one table."""
    rows = []
    for path in paths:
        path = Path(path)
        bench = pd.read_csv(path, sep="\t")
        match = _RUN_DIR.match(path.stem)
        row = {
            "dataset": path.parents[2].name,
            "step": path.parent.name,
            "run": path.stem,
            "seconds": float(bench["s"].iloc[0]),
            # Snakemake writes "-" where it could not measure memory.
            "max_rss_mb": pd.to_numeric(
                bench.get("max_rss", pd.Series([None])), errors="coerce"
            ).iloc[0],
        }
        if match:
            row.update(schedule=match["schedule"], T=int(match["T"]), seed=int(match["seed"]))
        rows.append(row)
    return pd.DataFrame(rows)
