"""Helpers the Snakemake rules call at parse time; none needs NumPy or PyTorch.

- :func:`library_inputs`: the library files a rule script imports, found by reading its
  imports (an ``ast`` walk, transitively within the package), so that editing any module a
  rule uses, even indirectly, makes its outputs out of date and no hand-kept list can drift.
- :func:`literal_defaults`: a library function's keyword defaults read from its source, so
  that the config check uses the library's defaults without importing the library.
- :func:`retry_runtime`: the runtime a retry asks for, capped at a partition limit.
- :func:`job_device`: the device a job is told to use, given whether it asked for a GPU.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from .imports import PACKAGE_DIR, imported_modules, module_path

__all__ = [
    "imported_modules",
    "job_device",
    "library_inputs",
    "literal_defaults",
    "retry_runtime",
]


def library_inputs(script: str | Path, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The library source files ``script`` depends on (lazy imports included), sorted."""
    modules = imported_modules(script, package_dir=package_dir)
    return sorted(str(module_path(m, package_dir)) for m in modules)


@functools.cache
def literal_defaults(relative_path: str, function: str) -> dict[str, object]:
    """The keyword defaults of ``function`` in ``ddpm/relative_path`` that are literals.

    ``function`` names a module-level function, or a method as ``"Class.method"`` (e.g.
    ``"GaussianDiffusion.__init__"``).
    """
    tree = ast.parse((PACKAGE_DIR / relative_path).read_text(encoding="utf-8"))
    body = tree.body
    class_name, _, function = function.rpartition(".")
    if class_name:
        classes = [n for n in body if isinstance(n, ast.ClassDef) and n.name == class_name]
        body = classes[0].body if classes else []
    for node in body:
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
    name = f"{class_name}.{function}" if class_name else function
    raise LookupError(f"no function {name!r} in {PACKAGE_DIR / relative_path}")


def retry_runtime(base_minutes: int, attempt: int, max_minutes: int | None = None) -> int:
    """Minutes for ``attempt`` (1, 2, ...): ``attempt`` times the base, at most ``max_minutes``.

    A retry after a time limit or a preemption resumes from the last checkpoint, so more time
    helps; more than the partition allows would only keep the job pending forever.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    minutes = base_minutes * attempt
    return min(minutes, max_minutes) if max_minutes else minutes


def job_device(device: str, gpus: int) -> str:
    """``cuda`` for a job that asked for a GPU and left the device to ``auto``.

    Such a job must fail at once where CUDA is missing, instead of running for hours on the CPU.
    """
    return "cuda" if device == "auto" and gpus > 0 else device
