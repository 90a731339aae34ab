"""The study's report: one self-contained HTML file (figures embedded) that opens offline.

- :mod:`.build`: the report's inputs (``StudyGrid``, ``DatasetResults``) and ``build_report``;
- :mod:`.answers`: the answers of one dataset (slopes over T, best schedule, claims, best cell);
- :mod:`.sections`: the other sections (grid, forward process, sample quality, run times,
  provenance);
- :mod:`.page`: the page itself, figures with their captions from
  :mod:`ddpm.workflow.figures`, tables.

Like every package of the library, this one imports nothing itself: names are imported from
their modules.
"""
