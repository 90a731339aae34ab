"""Which code, which packages and which machine made a result.

Every run records :func:`provenance` in its ``run.json`` and ``model.pt``, and the report
states it for the study, so that "which commit and which torch made figure 5.2?" has an
answer in the results themselves.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

__all__ = ["cpu_model", "machine", "package_versions", "provenance", "source_revision"]

#: The distributions whose versions decide the numbers, by the name a reader knows them by.
_PACKAGES = {
    "torch": "torch",
    "torchvision": "torchvision",
    "torch_fidelity": "torch-fidelity",
    "numpy": "numpy",
}

#: The checkout this library was loaded from (not a git checkout when installed as a wheel).
_CHECKOUT = Path(__file__).resolve().parents[2]


def package_versions() -> dict[str, str | None]:
    """Python's version and those of the packages the numbers depend on (None: not installed)."""
    from . import __version__

    versions: dict[str, str | None] = {"python": platform.python_version(), "ddpm": __version__}
    for key, distribution in _PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def source_revision(checkout: str | Path = _CHECKOUT) -> dict:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding the library, where
    ``dirty`` says whether tracked files differ from that commit; ``{"commit": None,
    "reason": ...}`` where there is no git checkout (or no git)."""
    checkout = Path(checkout)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except OSError:
        return {"commit": None, "reason": "no commit recorded: git is not installed here"}
    except subprocess.SubprocessError:
        return {"commit": None, "reason": f"no commit recorded: {checkout} is not a git checkout"}
    return {"commit": commit, "dirty": bool(changed)}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what the platform says)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The host, its CPU, and the GPUs torch sees (names only)."""
    import torch

    gpus = (
        [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    return {"host": platform.node(), "cpu": cpu_model(), "gpus": gpus}


def provenance() -> dict:
    """:func:`source_revision`, :func:`package_versions` and :func:`machine` together."""
    return {"source": source_revision(), "versions": package_versions(), "machine": machine()}
