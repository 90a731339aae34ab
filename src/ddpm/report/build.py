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

from ..figures import FIGURES, SECTIONS
from .answers import answers_section
from .page import figures_html, write_page
from .sections import (
    closeness_answer,
    configuration_section,
    forward_section,
    grid_section,
    quality_section,
    run_times_section,
)
from .seed004 import coding_section, has_prediction_study, prediction_section


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
        raise ValueError(
            f"figure {name!r} is not in ddpm.figures.FIGURES; declare it there with its "
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
    """The results of the dataset whose ``metrics.csv`` is ``metrics`` (its directory names
    it); of ``figures``, the PNGs in a directory of that name are its own; of ``coding``, the
    ``coding.csv`` of its own runs (``results/{name}/runs/...``)."""
    from ..coding import read_coding_tables

    name = Path(metrics).parent.name
    # floor.json writes NaN (a metric not computed) as null
    floor_record = {
        k: math.nan if v is None else v for k, v in json.loads(Path(floor).read_text()).items()
    }
    accuracy = json.loads(Path(classifier).read_text()).get("test_accuracy", math.nan)
    own = {Path(p).stem: Path(p) for p in figures if Path(p).parent.name == name}
    coded = [p for p in coding if Path(p).parents[2].name == name]
    tables = read_coding_tables(coded) if coded else None
    return DatasetResults(name, pd.read_csv(metrics), floor_record, accuracy, own, tables)


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
) -> Path:
    """Write the HTML report to ``out_path`` (atomically) and return its path.

    It opens with the answers (per dataset: FID / KID against T, the best schedule per T, the
    verdicts on report 003's claims, the best cell against the quality bars) and the thesis's
    closeness findings next to ours; the grid, the figures and full tables follow.
    ``inception_note`` says why Inception-v3 metrics are missing (None: they were computed).
    """
    answers = "".join(
        answers_section(d.name, d.runs, d.floor, d.figures_in("answers")) for d in datasets
    )
    forward = [(n, Path(p)) for n, p in (forward_figures or {}).items()]
    sections = [
        (SECTIONS["answers"], answers + closeness_answer(thesis_comparison)),
        *[
            (f"{d.name}: the prediction target", prediction_section(d.runs, d.coding))
            for d in datasets
            if has_prediction_study(d.runs)
        ],
        ("The grid", grid_section(grid, schedule_table)),
        (SECTIONS["forward"], forward_section(forward, closest_points)),
    ]
    note = inception_note or "computed with torch-fidelity's weights"
    for dataset in datasets:
        sections += _dataset_sections(dataset, grid.num_samples, note)
    if run_times is not None and not run_times.empty:
        sections.append(("Run times", run_times_section(run_times)))
    sections.append(("Configuration", configuration_section(configuration or {})))
    return write_page(out_path, sections)


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
