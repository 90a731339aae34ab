"""Figures. Every figure is one function that reads tables (or arrays) and returns a Figure;
the figures of the study are declared, with what they read, in
:data:`ddpm.workflow.figures.FIGURES`. :func:`ddpm.plots.style.save_figure` writes a figure as
PDF (for the thesis) and PNG (for the report).

Like every package of the library, this one imports nothing itself: names are imported from
their modules.
"""
