"""Figures. Every figure is one function that reads tables (or arrays) and returns a Figure;
the figures of the study are declared, with what they read, in :data:`ddpm.figures.FIGURES`.
``save_figure`` writes a figure as PDF (for the thesis) and PNG (for the report)."""

from .style import save_figure, use_style

__all__ = ["save_figure", "use_style"]
