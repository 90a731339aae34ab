"""The report's inputs as built values, and :func:`build_report`, which puts the page together
from them."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import ConfigError
from ..evaluation.scoring import read_metrics
from ..workflow.figures import FIGURES, SECTIONS
from .answers import answers_section
from .noise_levels import (
    log_snr_section,
    terminal_readings_html,
    terminal_snr_html,
    variant_section,
)
from .page import figures_html, write_page
from .sections import (
    closeness_answer,
    configuration_section,
    forward_section,
    grid_section,
    made_by_line,
    provenance_section,
    quality_section,
    run_times_section,
)
from .seed004 import coding_section, has_prediction_study, prediction_section

LOG_SNR_TITLE = "Forward process in log-SNR terms: collapse, prediction, shift"
VARIANT_TITLE = "The same images at another size: does the shift recover the quality?"


@dataclass(frozen=True)
class StudyGrid:
    """What the study ran: the grid, and the training and sampling settings of every run."""

    datasets: Sequence[str]
    schedules: Sequence[str]
    T: Sequence[int]
    seeds: Sequence[int]
    training_steps: int
    num_samples: int
    sampler: str

    @property
    def runs_per_dataset(self) -> int:
        return len(self.schedules) * len(self.T) * len(self.seeds)


@dataclass(frozen=True)
class DatasetResults:
    """One dataset's results: its runs table, real-data floor (NaN where a metric was not
    computed), the domain classifier's test accuracy, its figures (name -> PNG) and the
    rate–distortion tables of its coded runs (:func:`ddpm.coding.rate_distortion`, stacked)."""

    name: str
    runs: pd.DataFrame
    floor: Mapping[str, float]
    classifier_accuracy: float
    figures: Mapping[str, Path] = field(default_factory=dict)
    coding: pd.DataFrame | None = None

    def figures_in(self, section: str) -> list[tuple[str, Path]]:
        """The ``(name, png)`` of this dataset's figures that the registry puts in ``section``,
        without those that show a metric no run has (:meth:`figures_without_data`)."""
        empty = set(self.figures_without_data(section))
        return [
            (n, p) for n, p in self.figures.items() if _section_of(n) == section and n not in empty
        ]

    def figures_without_data(self, section: str) -> list[str]:
        """The figures of ``section`` whose metric no run has (e.g. Inception-v3 metrics of an
        offline run): drawn as empty frames, so the report leaves them out."""
        names = [n for n in self.figures if _section_of(n) == section]
        return [n for n in names if not _has_data(FIGURES[n], self.runs)]


def _has_data(figure, runs: pd.DataFrame) -> bool:
    metric = dict(figure.options).get("metric")
    return metric is None or (metric in runs and runs[metric].notna().any())


#: How to get the data of a figure left out for lack of it, by the setting it needs.
HOW_TO_GET = {
    "inception": (
        "put torch-fidelity's Inception-v3 weights into resources/inception/ (or point "
        'scoring.inception.weights_path at them; README, "Offline") and run again'
    ),
}


def left_out_note(names: Sequence[str], reason: str) -> str:
    """One line naming the figures left out for lack of data, why, and how to get them."""
    if not names:
        return ""
    needs = {need for name in names for need in FIGURES[name].needs}
    how = "; ".join(HOW_TO_GET[need] for need in sorted(needs) if need in HOW_TO_GET)
    return (
        f"<p class='note'>Left out for lack of data: {', '.join(names)} (no run has these "
        f"metrics: {html.escape(reason)}).{' To get them, ' + html.escape(how) + '.' if how else ''}"
        "</p>"
    )


def _section_of(name: str) -> str:
    if name not in FIGURES:
        raise ConfigError(
            f"figure {name!r} is not in ddpm.workflow.figures.FIGURES; declare it there with its "
            "caption and report section"
        )
    return FIGURES[name].section


def read_dataset_results(
    metrics: str | Path,
    floor: str | Path,
    classifier: str | Path,
    figures: Sequence[str | Path],
    coding: Sequence[str | Path] = (),
) -> DatasetResults:
    """The results of the dataset whose ``metrics.csv`` is ``metrics`` (its ``dataset`` column
    names it); of ``figures``, the PNGs in a directory of that name are its own; of ``coding``,
    the ``coding.csv`` of its own runs (their ``dataset`` column names it)."""
    from ..coding import read_coding_tables

    runs = pd.read_csv(metrics)
    names = runs["dataset"].unique() if "dataset" in runs else []
    if len(names) != 1:
        raise ConfigError(f"{metrics} should hold the runs of one dataset, it names {list(names)}")
    name = str(names[0])
    floor_record = read_metrics(floor)
    accuracy = json.loads(Path(classifier).read_text()).get("test_accuracy", math.nan)
    own = {Path(p).stem: Path(p) for p in figures if Path(p).parent.name == name}
    tables = read_coding_tables(coding) if coding else None
    if tables is not None:
        tables = tables[tables["dataset"] == name]
        tables = tables if len(tables) else None
    return DatasetResults(name, runs, floor_record, accuracy, own, tables)


def read_run_provenance(record_paths: Sequence[str | Path]) -> pd.DataFrame:
    """How many runs each combination of commit, packages, device and precision trained, from
    the runs' ``run.json``."""
    rows = []
    for path in record_paths:
        record = json.loads(Path(path).read_text())
        source, versions = record.get("source") or {}, record.get("versions") or {}
        rows.append(
            {
                "dataset": record.get("dataset"),
                "commit": (source.get("commit") or "unknown")[:12]
                + (" (uncommitted changes)" if source.get("dirty") else ""),
                "ddpm": versions.get("ddpm"),
                "torch": versions.get("torch"),
                "device": record.get("device"),
                "machine": (record.get("machine") or {}).get("cpu"),
                "precision": record.get("precision"),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    keys = list(table.columns)
    return table.groupby(keys, dropna=False).size().reset_index(name="runs")


def build_report(
    out_path: str | Path,
    *,
    grid: StudyGrid,
    datasets: Sequence[DatasetResults],
    schedule_table: pd.DataFrame,
    closest_points: pd.DataFrame,
    thesis_comparison: pd.DataFrame,
    forward_figures: Mapping[str, Path] | None = None,
    inception_note: str | None = None,
    run_times: pd.DataFrame | None = None,
    configuration: Mapping | None = None,
    provenance: Mapping | None = None,
    shifted_band_entry: pd.DataFrame | None = None,
) -> Path:
    """Write the HTML report to ``out_path`` (atomically) and return its path.

    It opens with the answers (per dataset: FID / KID against T, the best schedule per T, the
    verdicts on report 003's claims, the best cell against the quality bars) and the thesis's
    closeness findings next to ours; the grid, the figures and full tables follow.
    ``inception_note`` says why Inception-v3 metrics are missing (None: they were computed).
    ``provenance`` holds ``made_by`` (:func:`ddpm.provenance.provenance` of the report's job,
    with Snakemake's version), ``runs`` (:func:`read_run_provenance`) and ``decisions`` (each
    dataset's precision decision).
    ``shifted_band_entry`` is the closeness analysis's shift check.
    """
    answers = "".join(
        answers_section(
            d.name,
            d.runs,
            d.floor,
            d.figures_in("answers"),
            after_claims=terminal_readings_html(d.runs, schedule_table),
        )
        for d in datasets
    )
    forward = [(n, Path(p)) for n, p in (forward_figures or {}).items()]
    sections = [
        (SECTIONS["answers"], answers + closeness_answer(thesis_comparison)),
        *[
            (f"{d.name}: the prediction target", prediction_section(d.runs, d.coding))
            for d in datasets
            if has_prediction_study(d.runs)
        ],
        (
            "The grid",
            grid_section(grid, schedule_table)
            + terminal_snr_html(schedule_table, grid.schedules, grid.T),
        ),
        (SECTIONS["forward"], forward_section(forward, closest_points)),
        (LOG_SNR_TITLE, log_snr_section(closest_points, shifted_band_entry)),
    ]
    other_size = variant_section(datasets, configuration or {}, grid.schedules[0])
    if other_size:
        sections.insert(1, (VARIANT_TITLE, other_size))
    note = inception_note or "computed with torch-fidelity's weights"
    for dataset in datasets:
        sections += _dataset_sections(dataset, grid.num_samples, note)
    if run_times is not None and not run_times.empty:
        sections.append(("Run times", run_times_section(run_times)))
    made_by = ""
    if provenance is not None:
        sections.append(("Provenance", provenance_section(**provenance)))
        made_by = made_by_line(provenance["made_by"])
    sections.append(("Configuration", configuration_section(configuration or {})))
    return write_page(out_path, sections, made_by)


def _dataset_sections(dataset: DatasetResults, num_samples: int, inception_note: str) -> list:
    return [
        (
            f"{dataset.name}: {SECTIONS['training']}",
            figures_html(dataset.figures_in("training")),
        ),
        (f"{dataset.name}: {SECTIONS['samples']}", figures_html(dataset.figures_in("samples"))),
        (
            f"{dataset.name}: {SECTIONS['quality']}",
            quality_section(dataset, dataset.figures_in("quality"), num_samples, inception_note)
            + left_out_note(dataset.figures_without_data("quality"), inception_note),
        ),
        (
            f"{dataset.name}: {SECTIONS['coding']}",
            coding_section(dataset.coding, dataset.figures_in("coding")),
        ),
    ]
