"""The HTML page: its style, embedded figures with their registry captions, tables, and the
atomic write of the whole page."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..files import atomic_write_text
from ..workflow.figures import figure_caption

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #aaa; }
figure { margin: 1.5em 0; } img { max-width: 100%; } figcaption { font-size: 0.9em; color: #444; }
table.table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
table.table td, table.table th { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
.note { background: #fff8e0; padding: 0.5em 1em; border-left: 4px solid #e0b000; }
"""


def figure_html(name: str, png: str | Path) -> str:
    """Figure ``name`` embedded from its PNG, captioned from :data:`ddpm.workflow.figures.FIGURES`."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(name)}">'
        f"<figcaption>{html.escape(figure_caption(name))}</figcaption></figure>"
    )


def figures_html(figures) -> str:
    """Every ``(name, png)`` pair in order."""
    return "".join(figure_html(name, png) for name, png in figures)


def table_html(frame: pd.DataFrame, float_format="{:.4g}") -> str:
    # to_html's na_rep leaves pandas' own missing integer (<NA>) as it is.
    integers = [name for name, dtype in frame.dtypes.items() if isinstance(dtype, pd.Int64Dtype)]
    frame = frame.astype(dict.fromkeys(integers, object)).fillna(dict.fromkeys(integers, "–"))
    return frame.to_html(
        index=False, border=0, classes="table", float_format=float_format.format, na_rep="–"
    )


def write_page(
    out_path: str | Path, sections: Sequence[tuple[str, str]], made_by: str = ""
) -> Path:
    """Write the page of ``(title, html)`` sections with a table of contents; the file appears
    whole or not at all (a failed write leaves no partial page). ``made_by`` (HTML) follows the
    date under the title."""
    toc = "".join(
        f'<li><a href="#s{i}">{html.escape(title)}</a></li>'
        for i, (title, _) in enumerate(sections)
    )
    body = "".join(
        f'<h2 id="s{i}">{html.escape(t)}</h2>{content}' for i, (t, content) in enumerate(sections)
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>DDPM schedule study</title>"
        f"<style>{STYLE}</style></head><body><h1>DDPM schedule study</h1>"
        f"<p>How the noise schedule and the number of diffusion steps T shape the forward process "
        f"and the quality of the samples. Generated {stamp}{made_by}.</p><ul>{toc}</ul>{body}"
        "</body></html>"
    )
    return atomic_write_text(out_path, page)
