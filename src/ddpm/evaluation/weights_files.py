"""Where the Inception-v3 weights are looked for; needs neither PyTorch nor torch-fidelity.

The workflow asks :func:`provided_weights_state` while Snakemake parses (a parameter of the
rule that resolves the weights), so this module stays importable with Snakemake alone.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

__all__ = [
    "DOWNLOAD_SUBDIR",
    "INCEPTION_WEIGHTS_FILENAME",
    "provided_candidates",
    "provided_weights_state",
    "weights_filename",
]

INCEPTION_WEIGHTS_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
"""The file torch-fidelity publishes (the name of its ``URL_INCEPTION_V3``; a test checks it)."""

DOWNLOAD_SUBDIR = "downloaded"
"""Downloads go to a folder of their own under the resources folder, apart from the place where
a user drops a file by hand, so that a download does not look like a newly provided file."""


def weights_filename(url: str | None) -> str:
    """The file name the weights have at ``url`` (torch-fidelity's name without one)."""
    name = Path(urlparse(url).path).name if url else ""
    return name or INCEPTION_WEIGHTS_FILENAME


def provided_candidates(weights_path, url, resources_dir) -> list[Path]:
    """Where a user may put the weights: ``weights_path``, then the place the offline message names."""
    drop_in = Path(resources_dir) / weights_filename(url)
    return [Path(weights_path), drop_in] if weights_path else [drop_in]


def provided_weights_state(
    weights_path: str | Path | None, url: str | None, resources_dir: str | Path
) -> str:
    """Which weights files the user has provided, with size and modification time: ``"none"``
    when there are none.

    A workflow rule takes this as a parameter, so that adding (or replacing) a weights file after an
    offline run makes the next run resolve the weights again. The rule's own downloads go elsewhere
    (:data:`DOWNLOAD_SUBDIR`) and do not change it, so an online run is not redone.
    """
    found = []
    for candidate in provided_candidates(weights_path, url, resources_dir):
        if candidate.is_file():
            stat = candidate.stat()
            found.append(f"{candidate} ({stat.st_size} bytes, mtime {stat.st_mtime_ns} ns)")
    return "; ".join(found) or "none"
