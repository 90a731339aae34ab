"""The shape of the library the README's Layout section describes, kept true:

- every package's ``__init__`` imports nothing, and each public name has one import path, its
  module's (``__all__`` lists only what the module defines; code imports a name from there);
- the parse-time package :mod:`ddpm.workflow` keeps its import rule;
- every module the README's module map names exists, and every module is named there.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from ddpm.workflow.code import PACKAGE_DIR, module_path

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            names |= {
                e.id
                for t in node.targets
                if isinstance(t, ast.Tuple)
                for e in t.elts
                if isinstance(e, ast.Name)
            }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


DEFINED = {_module_name(path): _defined(ast.parse(path.read_text())) for path in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_a_module_exports_only_what_it_defines(path):
    tree = ast.parse(path.read_text())
    exported = next(
        (
            ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign)
            and any(getattr(t, "id", None) == "__all__" for t in node.targets)
        ),
        [],
    )
    assert set(exported) <= DEFINED[_module_name(path)], set(exported) - DEFINED[_module_name(path)]


def test_package_inits_import_nothing():
    # Except the root, which defines the version and the errors: an import of one module
    # then loads that module's imports only, and a rule's code version follows them.
    for init in PACKAGE_DIR.rglob("__init__.py"):
        imports = [
            node
            for node in ast.parse(init.read_text()).body
            if isinstance(node, ast.Import | ast.ImportFrom)
        ]
        assert not imports, f"{init.relative_to(REPO)} imports {[ast.unparse(i) for i in imports]}"


def _ddpm_imports(path: Path):
    """(module, name, line) of every ``from ddpm... import name`` in ``path``."""
    tree = ast.parse(path.read_text())
    here = _module_name(path) if path.is_relative_to(PACKAGE_DIR) else None
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            package = here if path.name == "__init__.py" else here.rpartition(".")[0]
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            module = f"{base}.{node.module}" if node.module else base
        else:
            module = node.module or ""
        if module == "ddpm" or module.startswith("ddpm."):
            for alias in node.names:
                yield module, alias.name, node.lineno


def test_each_name_is_imported_from_the_module_that_defines_it():
    files = [
        *MODULES,
        *(REPO / "tests").glob("*.py"),
        *(REPO / "benchmarks").glob("*.py"),
        *(REPO / "workflow" / "scripts").glob("*.py"),
    ]
    wrong = []
    for path in files:
        for module, name, line in _ddpm_imports(path):
            if module_path(f"{module}.{name}", PACKAGE_DIR) is not None:
                continue  # a submodule
            if module in DEFINED and name not in DEFINED[module]:
                owners = [m for m, names in DEFINED.items() if name in names]
                wrong.append(f"{path.relative_to(REPO)}:{line}: {name} from {module}, not {owners}")
    assert not wrong, "\n".join(wrong)


def test_the_workflow_package_keeps_its_import_rule():
    allowed = {"ddpm", "ddpm.beta_formulas", "ddpm.prediction", "ddpm.unet_config"}
    third_party = {"yaml", "jsonschema"}
    for path in (PACKAGE_DIR / "workflow").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [next(_ddpm_imports_of(node, path), node.module or "")]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = (
                    top in sys.stdlib_module_names
                    or top in third_party
                    or name in allowed
                    or name.startswith("ddpm.workflow")
                )
                assert ok, f"{path.name} imports {name}"


def _ddpm_imports_of(node: ast.ImportFrom, path: Path):
    if node.level:
        base = ".".join(_module_name(path).split(".")[: -node.level])
        yield f"{base}.{node.module}" if node.module else base
    else:
        yield node.module or ""


def test_the_readme_module_map_names_every_module():
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Layout\n") :]
    section = section[: section.index("\n## ", 1)]
    named = set(re.findall(r"`((?:[a-z_0-9]+/)*[a-z_0-9]+\.py)`", section))
    # A path from the repository's root (src/ddpm/..., workflow/..., tests/...) names that file.
    named = {
        n.removeprefix("src/ddpm/")
        for n in named
        if not (REPO / n).is_file() or n.startswith("src/ddpm/")
    }
    files = {str(p.relative_to(PACKAGE_DIR)) for p in MODULES if p.name != "__init__.py"}
    on_disk = {p.name for p in MODULES} | files
    assert not named - on_disk, f"the README names modules that do not exist: {named - on_disk}"
    unnamed = {f for f in files if f not in named and Path(f).name not in named}
    assert not unnamed, f"the README's module map leaves out {sorted(unnamed)}"
