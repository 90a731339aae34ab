"""Helpers the Snakemake rules call at parse time; none needs NumPy or PyTorch.

- :func:`code_version`: a digest of what the library code a rule script imports computes
  (an ``ast`` walk, transitively within the package; comments, docstrings, log lines and the
  version number left out), passed as a rule parameter: editing a module a rule uses, even
  indirectly, in a way that can change its numbers makes its outputs out of date, and
  nothing else does, wherever the checkout lies.
- :func:`literal_defaults`: a library function's keyword defaults read from its source, so
  that the config check uses the library's defaults without importing the library.
- :func:`gpu_request`: whether (and how) a job was given a GPU by its profile; the job's
  device follows from it (:func:`ddpm.runtime.resolve_job_device`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from pathlib import Path

from .imports import PACKAGE_DIR, code_digest, imported_modules, module_path

__all__ = [
    "code_version",
    "gpu_request",
    "imported_modules",
    "library_inputs",
    "literal_defaults",
]


def library_inputs(script: str | Path, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The library source files ``script`` depends on (lazy imports included), sorted."""
    modules = imported_modules(script, package_dir=package_dir)
    return sorted(str(module_path(m, package_dir)) for m in modules)


def code_version(script: str | Path, package_dir: Path = PACKAGE_DIR) -> str:
    """A short digest of what the library modules that ``script`` imports compute.

    A rule takes it as a parameter: Snakemake reruns a job whose parameters changed, so an
    edit that can change a number reruns what depends on it, while a comment, a docstring,
    a log message, a version bump or a moved checkout (the digest holds no path) does not.
    """
    modules = imported_modules(script, package_dir=package_dir)
    return code_digest(modules, package_dir)[:16]


@functools.cache
def literal_defaults(relative_path: str, function: str) -> dict[str, object]:
    """The keyword defaults of ``function`` in ``ddpm/relative_path`` that are literals."""
    tree = ast.parse((PACKAGE_DIR / relative_path).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            arguments = node.args
            positional = arguments.posonlyargs + arguments.args
            pairs = list(
                zip(
                    positional[len(positional) - len(arguments.defaults) :],
                    arguments.defaults,
                    strict=True,
                )
            )
            pairs += [
                (a, d)
                for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
                if d is not None
            ]
            defaults = {}
            for argument, default in pairs:
                try:
                    defaults[argument.arg] = ast.literal_eval(default)
                except ValueError:
                    continue  # not a literal (a call, a name): the library decides at run time
            return defaults
    raise LookupError(f"no function {function!r} in {PACKAGE_DIR / relative_path}")


def gpu_request(resources: Mapping) -> str | None:
    """How a job's resources ask for a GPU (``"gres=gpu:a100:1"``, ``"gpu=1"``), or None.

    A profile gives a GPU to a job in one of Snakemake's two forms: the ``gpu`` count (which
    Snakemake's SLURM plugin turns into ``--gpus``, and a workstation counts against
    ``--resources gpu=N``) or a SLURM GRES string naming ``gpu``.
    """
    gres = str(resources.get("gres") or "")
    if any(part.split(":")[0] == "gpu" for part in gres.split(",")):
        return f"gres={gres}"
    count = resources.get("gpu") or 0
    if int(count) > 0:
        return f"gpu={count}"
    return None
