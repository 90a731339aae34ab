"""The README's code runs as written: the library example, and the worked figure example."""

import re
import textwrap
from pathlib import Path

import pandas as pd

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(section: str) -> list[str]:
    """The ```python blocks of one ``## section`` of the README, dedented."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", body, re.S)]


def test_readme_library_example_runs():
    namespace: dict = {}
    exec(compile(_python_blocks("The library")[0], "README.md", "exec"), namespace)  # noqa: S102
    samples = namespace["samples"]
    assert samples.shape == (4, 1, 28, 28)
    assert samples.min() >= -1 and samples.max() <= 1
    assert namespace["loss"].item() > 0


def test_readme_figure_example_is_a_complete_registry_entry_that_draws(tmp_path):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ddpm.workflow.figures import DATASET_INPUTS, SECTIONS, Figure

    entry, draw = _python_blocks("Layout")
    figure = eval(entry, {"Figure": Figure})  # noqa: S307 - the README's own expression
    assert figure.section in SECTIONS and set(figure.reads) <= set(DATASET_INPUTS)
    namespace = {"plt": plt, "pd": pd, "sns": sns}
    exec(compile(draw, "README.md", "exec"), namespace)  # noqa: S102
    function = namespace[figure.draw.split(":")[1]]
    metrics = tmp_path / "metrics.csv"
    pd.DataFrame(
        {"schedule": ["linear"] * 2 + ["cosine"] * 2, "T": [50, 100] * 2, "final_loss": [0.3] * 4}
    ).to_csv(metrics, index=False)
    drawn = function(metrics=str(metrics))
    lines = drawn.axes[0].get_lines()
    assert any(list(line.get_xdata()) == [50, 100] for line in lines)
    plt.close(drawn)
