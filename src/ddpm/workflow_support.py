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

__all__ = [
    "imported_modules",
    "job_device",
    "library_inputs",
    "literal_constant",
    "literal_defaults",
    "retry_runtime",
]

PACKAGE = "ddpm"
PACKAGE_DIR = Path(__file__).resolve().parent


def _module_path(module: str, package_dir: Path) -> Path | None:
    """The file of ``ddpm.x.y`` (a module or a package's ``__init__.py``), or None."""
    parts = module.split(".")[1:]
    base = package_dir.joinpath(*parts)
    if parts and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


class _ImportCollector(ast.NodeVisitor):
    """The package-internal modules named by the import statements of one file."""

    def __init__(self, module: str, is_package: bool, top_level_only: bool, package_dir: Path):
        self.package = module if is_package else module.rpartition(".")[0]
        self.top_level_only = top_level_only
        self.package_dir = package_dir
        self.found: set[str] = set()

    def _add(self, name: str) -> None:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            self.found.add(name)

    def visit_FunctionDef(self, node):
        # Imports inside a function run only when it is called (lazy imports).
        if not self.top_level_only:
            self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node):
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, node.module] if node.module else anchor)
        else:
            base = node.module or ""
        self._add(base)
        for alias in node.names:
            # `from package import name`: name may be a submodule.
            if _module_path(f"{base}.{alias.name}", self.package_dir):
                self._add(f"{base}.{alias.name}")


def _with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def imported_modules(
    script: str | Path, top_level_only: bool = False, package_dir: Path = PACKAGE_DIR
) -> set[str]:
    """Every ``ddpm`` module that importing (or running) ``script`` imports, transitively.

    A module's parent packages count too (Python runs their ``__init__``). With
    ``top_level_only`` the imports inside functions are left out: the result is then what
    ``import`` alone loads.
    """
    pending = [(Path(script), "__main__", False)]
    seen: set[str] = set()
    while pending:
        path, module, is_package = pending.pop()
        collector = _ImportCollector(module, is_package, top_level_only, package_dir)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for name in collector.found:
            for parent in sorted(_with_parents(name) - seen):
                file = _module_path(parent, package_dir)
                if file is None:
                    continue  # a name imported from a package, not a module
                seen.add(parent)
                pending.append((file, parent, file.name == "__init__.py"))
    return seen


def library_inputs(script: str | Path, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The library source files ``script`` depends on (lazy imports included), sorted."""
    modules = imported_modules(script, package_dir=package_dir)
    return sorted(str(_module_path(m, package_dir)) for m in modules)


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


@functools.cache
def literal_constant(relative_path: str, name: str):
    """The literal value assigned to module-level ``name`` in ``ddpm/relative_path``.

    Lets the rules read a table such as ``plots.thesis.THESIS_FIGURES`` without importing
    Matplotlib.
    """
    tree = ast.parse((PACKAGE_DIR / relative_path).read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"no literal {name} in {PACKAGE_DIR / relative_path}")


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
