"""A fingerprint of the library code that a training run's weights depend on.

A checkpoint carries the fingerprint of the code that wrote it. When the code changes
(an edited U-Net, schedule or loss), the workflow reruns the training, and the rerun must
compute afresh instead of resuming, or even just re-saving, weights of the old code.

The fingerprint is a SHA-256 over the source files of the import closure of
``ddpm.training`` within the ``ddpm`` package: every ddpm module that the training
imports, directly or through another ddpm module. It follows the imports in the source
(read with :mod:`ast`, nothing is executed), so a new module that the training starts
to use is covered without a list to maintain.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

__all__ = ["code_fingerprint", "code_modules"]

PACKAGE = "ddpm"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_ROOT = "training"


def _module_file(package_dir: Path, module: str) -> Path | None:
    """The source file of ``ddpm.<module>`` (dotted below ddpm), or None if there is none."""
    base = package_dir.joinpath(*module.split(".")) if module else package_dir
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_modules(module: str, path: Path) -> set[str]:
    """The ddpm modules (dotted below ddpm) that the source of ``module`` imports."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name.removeprefix(PACKAGE).lstrip("."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(p for p in [*parts, node.module or ""] if p)
            elif node.module and (node.module + ".").startswith(PACKAGE + "."):
                base = node.module.removeprefix(PACKAGE).lstrip(".")
            else:
                continue
            found.add(base)
            # `from . import x` and `from .pkg import mod` may name submodules.
            found.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names)
    return found


@cache
def code_modules(
    root: str = _ROOT, package_dir: Path = _PACKAGE_DIR
) -> tuple[tuple[str, Path], ...]:
    """(module, source file) of the import closure of ``ddpm.<root>``, sorted by module.

    ``package_dir`` is the ``ddpm`` directory to read (another checkout's, say).
    """
    seen: dict[str, Path] = {}
    pending = [root]
    while pending:
        module = pending.pop()
        path = _module_file(package_dir, module)
        if module in seen or path is None:
            continue
        seen[module] = path
        # Importing a submodule runs its parent packages' __init__ too.
        parents = [module.rpartition(".")[0]] if module else []
        pending += parents + sorted(_imported_modules(module, path))
    return tuple(sorted(seen.items()))


def code_fingerprint(root: str = _ROOT, package_dir: Path = _PACKAGE_DIR) -> str:
    """SHA-256 over the names and contents of :func:`code_modules`; read afresh each call."""
    digest = hashlib.sha256()
    for module, path in code_modules(root, Path(package_dir)):
        source = path.read_bytes()
        digest.update(f"{module or PACKAGE}\0{len(source)}\0".encode())
        digest.update(source)
    return digest.hexdigest()
