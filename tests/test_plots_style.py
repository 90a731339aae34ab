"""Figures saved as PDF embed their fonts as TrueType (Type 42), which PDF checks accept."""

import re

import matplotlib.pyplot as plt
import pytest

from ddpm.plots.style import save_figure, use_style


def _font_subtypes(pdf_bytes: bytes) -> set[str]:
    # Font dictionaries are plain (uncompressed) objects in matplotlib's PDFs.
    return set(re.findall(rb"/Subtype\s*/(Type3|TrueType|Type0|CIDFontType2|Type1)", pdf_bytes))


@pytest.mark.parametrize("styled", [True, False], ids=["use_style", "plain"])
def test_pdf_figures_embed_truetype_fonts_not_type3(styled, tmp_path):
    if styled:
        use_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0], label="linear")
    ax.set_xlabel("t / T")
    ax.set_title("alpha_bar(t) = 0.5")
    ax.legend()
    pdf = tmp_path / "figure.pdf"
    save_figure(fig, pdf, tmp_path / "figure.png")

    subtypes = _font_subtypes(pdf.read_bytes())
    assert b"Type3" not in subtypes, f"Type 3 fonts in the PDF: {subtypes}"
    assert subtypes & {b"TrueType", b"CIDFontType2"}, f"no TrueType font embedded: {subtypes}"
    assert (tmp_path / "figure.png").stat().st_size > 0
