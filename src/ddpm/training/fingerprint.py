"""A fingerprint of the library code that a training run's weights depend on.

A checkpoint carries the fingerprint of the code that wrote it. When the code changes
(an edited U-Net, schedule or loss), the workflow reruns the training, and the rerun must
compute afresh instead of resuming, or even just re-saving, weights of the old code.

The fingerprint is :func:`ddpm.imports.code_digest` of the import closure of
``ddpm.training`` within the ``ddpm`` package: every ddpm module that the training
imports, directly or through another ddpm module. It follows the imports in the source
(read with :mod:`ast`, nothing is executed), so a new module that the training starts
to use is covered without a list to maintain; and it hashes what the code computes, so a
comment, a docstring, a log message or a version bump keeps a half-finished run resumable.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ..imports import PACKAGE, code_digest, module_closure, module_path

__all__ = ["code_fingerprint", "code_modules"]

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_ROOT = "training"


@cache
def code_modules(
    root: str = _ROOT, package_dir: Path = _PACKAGE_DIR
) -> tuple[tuple[str, Path], ...]:
    """(module, source file) of the import closure of ``ddpm.<root>``, sorted by module.

    Modules are named below ``ddpm`` (``""`` is the package itself); ``package_dir`` is the
    ``ddpm`` directory to read (another checkout's, say).
    """
    modules = module_closure(f"{PACKAGE}.{root}", Path(package_dir))
    return tuple(
        sorted(
            (name.removeprefix(PACKAGE).lstrip("."), module_path(name, Path(package_dir)))
            for name in modules
        )
    )


def code_fingerprint(root: str = _ROOT, package_dir: Path = _PACKAGE_DIR) -> str:
    """:func:`~ddpm.imports.code_digest` of :func:`code_modules`; read afresh each call."""
    modules = module_closure(f"{PACKAGE}.{root}", Path(package_dir))
    return code_digest(modules, Path(package_dir))
