"""The sections of the page after the answers: the grid, the forward process, each dataset's
training, samples and sample quality, the run times, the provenance and the configuration."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import yaml

from .answers import interval, metric_name
from .page import figures_html, table_html


def grid_section(grid, schedule_table: pd.DataFrame) -> str:
    """What was run (a :class:`ddpm.report.StudyGrid`), and the definition of each schedule
    of the grid as the schedule table records it (its T values, its parameters)."""
    # The schedule table also holds the T values of the schedule-curve figures: keep the grid's.
    in_grid = schedule_table["schedule"].isin(grid.schedules) & schedule_table["T"].isin(grid.T)
    table = schedule_table[in_grid]
    schedules = (
        table.drop_duplicates(["schedule", "beta_schedule", "params", "T"])
        .groupby(["schedule", "beta_schedule", "params"], sort=False)["T"]
        .agg(lambda steps: ", ".join(map(str, sorted(steps))))
        .reset_index()
    )
    return (
        f"<p>Datasets: {', '.join(grid.datasets)}. Schedules: {', '.join(grid.schedules)}. "
        f"T: {', '.join(map(str, grid.T))}. Seeds: {', '.join(map(str, grid.seeds))}. "
        f"{grid.runs_per_dataset} runs per dataset, "
        f"{grid.training_steps} training steps each, "
        f"{grid.num_samples} samples per run ({grid.sampler} sampler).</p>"
        + table_html(schedules[["schedule", "beta_schedule", "T", "params"]])
    )


def forward_section(figures: Sequence[tuple[str, Path]], closest_points: pd.DataFrame) -> str:
    """The figures of the forward process and the closest point to noise (the log-SNR and
    predicted columns have their own section)."""
    own = [c for c in closest_points if not c.startswith(("predicted_", "log_snr_"))]
    return (
        figures_html(figures) + "<h3>Closest point to noise</h3>" + table_html(closest_points[own])
    )


def closeness_answer(thesis_comparison: pd.DataFrame) -> str:
    """Our closeness readings next to the thesis's statements, and what the readings mean."""
    from ..analysis.thesis import explain_closeness_readings

    return (
        "<h3>Forward process: closeness to noise, next to the thesis</h3>"
        + table_html(thesis_comparison)
        + f"<div class='note'>{explain_closeness_readings()}</div>"
    )


def quality_section(
    dataset, figures: Sequence[tuple[str, Path]], num_samples: int, inception_note: str
) -> str:
    """The quality figures, the summary over seeds, the real-data floor and every run."""
    from ..plots.metrics import metrics_summary_table

    runs = dataset.runs
    order = ["classifier_fid", "classifier_kid_mean", "classifier_is_mean"]
    order += ["inception_fid", "inception_kid_mean", "inception_is_mean"]
    metrics = [m for m in order if m in runs and pd.api.types.is_numeric_dtype(runs[m])]
    summary = metrics_summary_table(runs, metrics) if metrics else pd.DataFrame()
    return (
        f"<p>Every number compares {num_samples} generated images with the real test set. The "
        "domain classifier reached a test accuracy of "
        f"{dataset.classifier_accuracy:.3f}. FID is biased upwards at small n; KID is unbiased; "
        "both are shown next to the floor at the same n.</p><p class='note'>Inception-v3 "
        f"metrics: {html.escape(inception_note)}</p>"
        + figures_html(figures)
        + "<h3>Mean [95 % t-interval over seeds], sd over seeds, sd over samples (bootstrap)</h3>"
        + (summary.reset_index().pipe(table_html) if not summary.empty else "<p>No metric.</p>")
        + "<h3>Real-data floor (two disjoint real sets of the same size)</h3>"
        + table_html(floor_table(dataset.floor, metrics))
        + "<h3>Every run</h3>"
        + table_html(runs)
    )


def floor_table(floor: Mapping, metrics: Sequence[str]) -> pd.DataFrame:
    """Each metric's real-vs-real floor with its bootstrap band."""
    from ..plots.metrics import floor_band

    return pd.DataFrame(
        [
            {
                "metric": metric_name(m),
                "real vs real [± 1.96 bootstrap sd]": interval(
                    **floor_band(floor, m) if m in floor else {"value": float("nan")}
                ),
                "sd over samples": floor.get(f"{m}_boot_sd", float("nan")),
            }
            for m in metrics
        ]
    )


def run_times_section(run_times: pd.DataFrame) -> str:
    """Seconds per job (one row per benchmark file), summed per dataset and step."""
    per_step = (
        run_times.groupby(["dataset", "step"])["seconds"]
        .agg(["count", "sum", "mean", "max"])
        .reset_index()
    )
    return (
        "<p>Wall-clock seconds per job, from Snakemake's benchmark files.</p>"
        + table_html(per_step, "{:.1f}")
        + table_html(run_times, "{:.1f}")
    )


def configuration_section(configuration: Mapping) -> str:
    """The study's configuration as YAML, as it was run."""
    return f"<pre>{html.escape(yaml.safe_dump(dict(configuration), sort_keys=False))}</pre>"


def _revision(source: Mapping) -> str:
    commit = source.get("commit")
    if not commit:
        return html.escape(source.get("reason", "no commit recorded"))
    tree = " with uncommitted changes" if source.get("dirty") else ", clean tree"
    return f"commit <code>{html.escape(commit)}</code>{tree}"


def made_by_line(made_by: Mapping) -> str:
    """`` by commit ... (torch ...)``: the line under the report's title."""
    torch_version = made_by.get("versions", {}).get("torch")
    return f" by {_revision(made_by.get('source', {}))} (torch {html.escape(str(torch_version))})"


def provenance_section(
    made_by: Mapping, runs: pd.DataFrame, decisions: Mapping[str, Mapping]
) -> str:
    """Which code, packages and machines made the results: the report's own job, every run
    (grouped by what they share), and each dataset's precision decision."""
    revision = _revision(made_by.get("source", {}))
    versions = ", ".join(
        f"{name} {html.escape(str(version))}"
        for name, version in made_by.get("versions", {}).items()
        if version is not None
    )
    host = made_by.get("machine", {})
    made = (
        f"<p>This report was made by {revision}; {versions}; on {html.escape(str(host.get('cpu')))}"
        + (f" with {html.escape(', '.join(host['gpus']))}" if host.get("gpus") else "")
        + ".</p>"
    )
    decided = pd.DataFrame(
        [
            {
                "dataset": dataset,
                "machine": f"{d['machine']['device_type']}: {d['machine']['model']} "
                f"({d['machine']['capability']})",
                "training": d["train"]["precision"],
                "sampling": d["sample"]["precision"],
                "why": d["train"]["reason"],
            }
            for dataset, d in decisions.items()
        ]
    )
    return (
        made
        + "<h3>The runs, by the code, packages, machine and precision that trained them</h3>"
        + (table_html(runs) if not runs.empty else "<p>No run.</p>")
        + "<h3>Precision, decided once per dataset and kind of machine</h3>"
        + table_html(decided)
    )
