"""Figures. Every figure is one function that reads tables (or arrays) and returns a Figure;
``save_figure`` writes it as PDF (for the thesis) and PNG (for the report)."""

from .style import save_figure, use_style

__all__ = ["save_figure", "use_style"]
