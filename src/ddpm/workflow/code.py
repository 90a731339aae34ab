"""Which ``ddpm`` modules a file imports, and a digest of what their code computes.

Both the workflow (a rule's :func:`code_version`: editing a module a rule's script uses,
even indirectly, makes its outputs out of date) and the training (the fingerprint of the
code its weights depend on) follow imports this way, so neither keeps a hand-written list.
Imports inside functions count (they run when the function is called); imports under
``if TYPE_CHECKING:`` do not (they serve annotations and never run).

:func:`code_digest` hashes the modules' syntax trees, not their text, with the parts that
only a person reads taken out (see :func:`computing_source`): a comment, a docstring, a log
line, an error message or the version number can change without anything being recomputed.
:func:`literal_defaults` reads a library function's keyword defaults the same way, so the
config check knows them without importing the library.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "PACKAGE",
    "PACKAGE_DIR",
    "code_digest",
    "code_version",
    "computing_source",
    "imported_modules",
    "literal_defaults",
    "module_closure",
    "module_path",
]

PACKAGE = "ddpm"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def module_path(module: str, package_dir: Path) -> Path | None:
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

    def visit_If(self, node):
        # `if TYPE_CHECKING:` imports are read by type checkers and never run, so they add no
        # input; only the `else:` branch runs.
        if _is_type_checking(node.test):
            for statement in node.orelse:
                self.visit(statement)
        else:
            self.generic_visit(node)

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
            if module_path(f"{base}.{alias.name}", self.package_dir):
                self._add(f"{base}.{alias.name}")


def _is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` tests ``TYPE_CHECKING`` (imported from typing, or ``typing.TYPE_CHECKING``)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


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
    return _closure([(Path(script), "__main__", False)], top_level_only, package_dir)


def module_closure(module: str, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """``module`` (e.g. ``"ddpm.training"``), its parents and every ddpm module it imports."""
    file = module_path(module, package_dir)
    if file is None:
        raise ValueError(f"no module {module!r} under {package_dir}")
    start = {parent for parent in _with_parents(module) if module_path(parent, package_dir)}
    pending = [
        (module_path(m, package_dir), m, module_path(m, package_dir).name == "__init__.py")
        for m in sorted(start)
    ]
    return start | _closure(pending, False, package_dir)


def _closure(pending: list, top_level_only: bool, package_dir: Path) -> set[str]:
    seen: set[str] = set()
    while pending:
        path, module, is_package = pending.pop()
        collector = _ImportCollector(module, is_package, top_level_only, package_dir)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for name in collector.found:
            for parent in sorted(_with_parents(name) - seen):
                file = module_path(parent, package_dir)
                if file is None:
                    continue  # a name imported from a package, not a module
                seen.add(parent)
                pending.append((file, parent, file.name == "__init__.py"))
    return seen


# --- what the code computes -----------------------------------------------------------------
#: Calls whose arguments are only ever read by a person: log records, printed lines, warnings.
_MESSAGE_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log", "warn"}
_MESSAGE_FUNCTIONS = {"print"}


class _PeopleOnlyText(ast.NodeTransformer):
    """Removes what cannot change a number: docstrings, message calls, error messages, and the
    version number. Comments are not in the syntax tree at all."""

    def _without_docstring(self, node):
        self.generic_visit(node)
        body = node.body
        first = body[0].value if body and isinstance(body[0], ast.Expr) else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _without_docstring

    def visit_Expr(self, node):
        call = node.value
        if isinstance(call, ast.Call) and _is_message_call(call.func):
            return ast.Pass()
        return self.generic_visit(node)

    def visit_Raise(self, node):
        # The exception's class decides what happens; its message is for the person reading.
        if isinstance(node.exc, ast.Call):
            node.exc = ast.Call(func=node.exc.func, args=[], keywords=[])
        return node

    def visit_Assign(self, node):
        targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        return ast.Pass() if targets == ["__version__"] else self.generic_visit(node)


def _is_message_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in _MESSAGE_FUNCTIONS
    return isinstance(func, ast.Attribute) and func.attr in _MESSAGE_METHODS


@functools.cache
def _computing_dump(path: Path, mtime_ns: int, size: int) -> str:
    tree = _PeopleOnlyText().visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def computing_source(path: str | Path) -> str:
    """A canonical text of the computation in ``path``: its syntax tree without docstrings,
    comments, log/print/warning calls, the messages of raised exceptions and ``__version__``.

    Two files with the same computing source compute the same numbers.
    """
    path = Path(path)
    stat = path.stat()
    return _computing_dump(path, stat.st_mtime_ns, stat.st_size)


def code_digest(modules: Iterable[str], package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 (hex) over the names and :func:`computing_source` of ``ddpm`` modules."""
    digest = hashlib.sha256()
    for module in sorted(set(modules)):
        path = module_path(module, package_dir)
        if path is None:
            continue
        source = computing_source(path).encode()
        relative = module.removeprefix(PACKAGE).lstrip(".") or PACKAGE
        digest.update(f"{relative}\0{len(source)}\0".encode())
        digest.update(source)
    return digest.hexdigest()


# --- what the workflow reads of the library ------------------------------------------------
def code_version(
    script: str | Path, also: Iterable[str] = (), package_dir: Path = PACKAGE_DIR
) -> str:
    """A short digest of what the library modules that ``script`` imports compute, and the
    modules ``also`` names (``"ddpm.plots.runs"``: one the script imports by name, as the
    figure script imports a figure's draw function) with what they import.

    A rule takes it as a parameter: Snakemake reruns a job whose parameters changed, so an
    edit that can change a number reruns what depends on it, while a comment, a docstring,
    a log message, a version bump or a moved checkout (the digest holds no path) does not.
    """
    modules = imported_modules(script, package_dir=package_dir)
    for module in also:
        modules |= module_closure(module, package_dir)
    return code_digest(modules, package_dir)[:16]


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
