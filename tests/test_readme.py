"""The README's first library example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_library_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
    samples = namespace["samples"]
    assert samples.shape == (4, 1, 28, 28)
    assert samples.min() >= -1 and samples.max() <= 1
    assert namespace["loss"].item() > 0
