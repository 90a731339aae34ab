"""The study's report: one self-contained HTML file (figures embedded) that opens offline.

- :mod:`.build`: the report's inputs (:class:`StudyGrid`, :class:`DatasetResults`) and
  :func:`build_report`;
- :mod:`.answers`: the answers of one dataset (slopes over T, best schedule, claims, best cell);
- :mod:`.sections`: the other sections (grid, forward process, sample quality, run times);
- :mod:`.page`: the page itself, figures with their captions from :mod:`ddpm.figures`, tables.
"""

from .build import (
    DatasetResults,
    StudyGrid,
    build_report,
    read_dataset_results,
    read_run_provenance,
)

__all__ = [
    "DatasetResults",
    "StudyGrid",
    "build_report",
    "read_dataset_results",
    "read_run_provenance",
]
