"""Shared look of every figure, and saving to PDF and PNG at once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is needed or assumed

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

#: Embed fonts as TrueType (Type 42) in PDF and PostScript. Matplotlib's default, Type 3, is
#: rejected by journals' and theses' PDF checks and renders blurry in some viewers.
FONT_EMBEDDING = {"pdf.fonttype": 42, "ps.fonttype": 42}

SCHEDULE_PALETTE = {
    "linear": "#1b9e77",
    "cosine": "#d95f02",
    "sigmoid": "#7570b3",
    "sigmoid_alpha_bar": "#e7298a",
}


def schedules_in_order(schedules) -> list[str]:
    """Known schedules in the palette's order, then any others alphabetically."""
    present = set(schedules)
    known = [name for name in SCHEDULE_PALETTE if name in present]
    return known + sorted(present - set(known))


def schedule_colours(schedules: Sequence[str]) -> dict[str, str]:
    """The study's colour of each known schedule; distinct colours for other labels (the
    prediction study's cosine_eps, cosine_x0, ... must be told apart)."""
    others = [name for name in schedules if name not in SCHEDULE_PALETTE]
    spare = [c for c in sns.color_palette("tab10").as_hex() if c not in SCHEDULE_PALETTE.values()]
    extra = dict(zip(others, spare * (len(others) // len(spare) + 1), strict=False))
    return {name: SCHEDULE_PALETTE.get(name, extra.get(name)) for name in schedules}


def use_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1, rc=FONT_EMBEDDING)


def save_figure(fig: plt.Figure, *paths: str | Path, dpi: int = 150) -> None:
    """Save ``fig`` to every path given (the suffix picks the format) and close it."""
    # Also for figures drawn without use_style(): every PDF the project writes embeds TrueType.
    with matplotlib.rc_context(FONT_EMBEDDING):
        for path in paths:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
