"""Where the study's files live: run directories, their cells, and the Inception-v3 weights.

The rules format their paths from :data:`RUN_DIR` and :data:`CELL`; the library finds a run's
files from a path inside its directory (:func:`run_directory`), and reads what the run is from
its record (``run.json``), never from the directory's name. The workflow also asks
:func:`provided_weights_state` while Snakemake parses (a parameter of the rule that resolves
the weights).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from .. import DataError

__all__ = [
    "ANALYSIS_FILES",
    "BENCHMARK",
    "CELL",
    "DATASET_FILES",
    "DOWNLOAD_SUBDIR",
    "FIGURE_FILE",
    "INCEPTION_WEIGHTS_FILENAME",
    "LABEL_PATTERN",
    "RUN_DIR",
    "RUN_RECORD",
    "STUDY_FIGURES",
    "job_of_benchmark",
    "provided_candidates",
    "provided_weights_state",
    "run_directory",
    "sampling_progress_dir",
    "weights_filename",
]

#: A schedule's label: a name usable in file names (the config's schema checks it too).
LABEL_PATTERN = "[A-Za-z0-9_]+"
#: One training run's directory, and one grid cell (a schedule and T, all seeds): the jobs of
#: sampling and scoring are per cell.
RUN_DIR = "results/{dataset}/runs/{schedule}-T{T}-seed{seed}"
CELL = "{schedule}-T{T}"
#: The record every run directory holds.
RUN_RECORD = "run.json"
#: A dataset's files (``data``, ``metrics``, ``floor`` and ``interpolation`` are what a figure
#: may read).
DATASET_FILES = {
    "data": "results/{dataset}/data.npz",
    "interpolation": "results/{dataset}/interpolation.npz",
    "metrics": "results/{dataset}/metrics.csv",
    "floor": "results/{dataset}/floor.json",
    "precision": "results/{dataset}/precision.json",
    "classifier": "results/{dataset}/classifier/classifier.pt",
    "classifier_summary": "results/{dataset}/classifier/classifier.json",
    "reference_cache": "results/{dataset}/reference_cache",
}
#: Snakemake's timing of a job: ``job`` is a run (training) or a cell (sampling, scoring).
BENCHMARK = "results/{dataset}/benchmarks/{step}/{job}.tsv"
#: The tables of the forward-process analysis (no training), by the name figures read them by.
ANALYSIS_FILES = {
    "destruction": "results/analysis/destruction.npz",
    "closeness_schedules": "results/analysis/closeness_schedules.csv",
    "closeness": "results/analysis/closeness.csv",
    "closest_points": "results/analysis/closest_points.csv",
    "thesis_comparison": "results/analysis/closest_points_vs_thesis.csv",
    "shifted_band_entry": "results/analysis/shifted_band_entry.csv",
    "schedules": "results/analysis/schedules.csv",
    "forward_samples": "results/analysis/forward_samples.npz",
}
#: A figure's files: one PDF (for a thesis) and one PNG (for the report). ``group`` is a
#: dataset, or ``thesis`` for the figures that need no training.
FIGURE_FILE = "results/figures/{group}/{figure}.{ext}"
STUDY_FIGURES = "thesis"

_JOB = re.compile(rf"(?P<schedule>{LABEL_PATTERN})-T(?P<T>\d+)(?:-seed(?P<seed>\d+))?$")


def sampling_progress_dir(samples_path: str | Path) -> Path:
    """Where the sampling that writes ``samples_path`` keeps its finished batches
    (``ddpm.sampling.SamplingProgress``), in the run's directory, until the cell's scoring has
    read the samples."""
    return Path(samples_path).parent / "sampling"


def run_directory(path: str | Path) -> Path:
    """The run directory holding ``path`` (a run's file, or the directory itself): the nearest
    directory, ``path`` included, with a run record in it."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if (candidate / RUN_RECORD).is_file():
            return candidate
    raise DataError(
        f"{path} is not inside a run directory (none of its folders holds a {RUN_RECORD}); "
        "train the run first"
    )


def job_of_benchmark(path: str | Path) -> dict:
    """``results/{dataset}/benchmarks/{step}/{job}.tsv`` -> dataset, step, schedule, T and the
    seed (None for a job over a cell's seeds). Snakemake names benchmark files by the job's
    wildcards, so here the name is all there is."""
    path = Path(path)
    match = _JOB.match(path.stem)
    job = {"dataset": path.parents[2].name, "step": path.parent.name, "run": path.stem}
    if match:
        seed = match["seed"]
        job.update(schedule=match["schedule"], T=int(match["T"]), seed=int(seed) if seed else None)
    return job


INCEPTION_WEIGHTS_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
"""The file torch-fidelity publishes (the name of its ``URL_INCEPTION_V3``; a test checks it)."""

DOWNLOAD_SUBDIR = "downloaded"
"""Downloads go to a folder of their own under the resources folder, apart from the place where
a user drops a file by hand, so that a download does not look like a newly provided file."""


def weights_filename(url: str | None) -> str:
    """The file name the weights have at ``url`` (torch-fidelity's name without one)."""
    name = Path(urlparse(url).path).name if url else ""
    return name or INCEPTION_WEIGHTS_FILENAME


def provided_candidates(weights_path, url, resources_dir) -> list[Path]:
    """Where a user may put the weights: ``weights_path``, then the place the offline message names."""
    drop_in = Path(resources_dir) / weights_filename(url)
    return [Path(weights_path), drop_in] if weights_path else [drop_in]


def provided_weights_state(
    weights_path: str | Path | None, url: str | None, resources_dir: str | Path
) -> str:
    """Which weights files the user has provided, with size and modification time: ``"none"``
    when there are none.

    A workflow rule takes this as a parameter, so that adding (or replacing) a weights file after an
    offline run makes the next run resolve the weights again. The rule's own downloads go elsewhere
    (:data:`DOWNLOAD_SUBDIR`) and do not change it, so an online run is not redone.
    """
    found = []
    for candidate in provided_candidates(weights_path, url, resources_dir):
        if candidate.is_file():
            stat = candidate.stat()
            found.append(f"{candidate} ({stat.st_size} bytes, mtime {stat.st_mtime_ns} ns)")
    return "; ".join(found) or "none"
