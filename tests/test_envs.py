"""The conda environment of the workflow's rules (workflow/envs/ddpm.yaml) is the tested stack.

A rule job with ``--use-conda`` sees only its conda environment (plus this checkout's src/), so
it must hold every package the library imports, at the versions the tests use: Python's minor
version and every package of the library's dependency closure pinned to its version in
constraints.txt. These tests keep the environment file, constraints.txt, pyproject.toml and the
code's imports in step; no conda channel is needed to run them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
ENV_DIR = REPO / "workflow" / "envs"
ENV_FILE = ENV_DIR / "ddpm.yaml"

#: Top-level import name -> PyPI distribution, where they differ.
IMPORT_TO_PYPI = {
    "torch_fidelity": "torch-fidelity",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "PIL": "pillow",
}
#: Installers, not part of the stack the numbers depend on.
NOT_PINNED = {"setuptools", "pip", "wheel"}


def load_env() -> dict:
    env = yaml.safe_load(ENV_FILE.read_text())
    assert isinstance(env, dict), f"{ENV_FILE.name}: not a YAML mapping"
    return env


def pip_requirements(env: dict) -> dict[str, Requirement]:
    sections = [spec["pip"] for spec in env["dependencies"] if isinstance(spec, dict)]
    requirements = [Requirement(spec) for section in sections for spec in section]
    return {canonicalize_name(r.name): r for r in requirements}


def constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def project_dependencies() -> dict[str, Requirement]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = [Requirement(spec) for spec in pyproject["project"]["dependencies"]]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def dependency_closure() -> dict[str, bool]:
    """The library's dependencies and theirs, as installed here: name -> whether a package is
    needed only on Linux (reached through requirements marked for Linux alone)."""
    pending = [(requirement, False) for requirement in project_dependencies().values()]
    found: dict[str, bool] = {}
    while pending:
        requirement, linux_only = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        linux_only = linux_only or "linux" in str(requirement.marker or "").lower()
        name = canonicalize_name(requirement.name)
        if name in found:
            found[name] = found[name] and linux_only
            continue
        found[name] = linux_only
        for spec in importlib.metadata.requires(name) or []:
            pending.append((Requirement(spec), linux_only))
    return {name: linux for name, linux in found.items() if name not in NOT_PINNED}


def test_python_is_the_tested_minor_version_from_conda_forge():
    env = load_env()
    # nodefaults keeps Anaconda's default channel (other licence, other builds) out even
    # where a user's .condarc lists it.
    assert env["channels"] == ["conda-forge", "nodefaults"]
    conda = [spec for spec in env["dependencies"] if isinstance(spec, str)]
    assert f"python={sys.version_info.major}.{sys.version_info.minor}" in conda, conda
    assert "pip" in conda, "a pip: section needs pip itself"


def test_every_package_is_pinned_to_its_tested_version():
    pins = constraints()
    for name, requirement in pip_requirements(load_env()).items():
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirement} is not pinned as name==version"
        assert specifier.version == pins.get(name), (
            f"{ENV_FILE.name} pins {requirement.name}=={specifier.version}, constraints.txt "
            f"{pins.get(name)}: make them equal (the environment is the tested stack)"
        )


def test_the_environment_is_the_whole_dependency_closure():
    """Every package the library needs, directly or not, is pinned, and nothing else; those
    only Linux needs (torch's CUDA libraries) carry a Linux marker, so the file also solves
    elsewhere."""
    requirements = pip_requirements(load_env())
    closure = dependency_closure()
    assert set(requirements) == set(closure), (
        f"missing {sorted(set(closure) - set(requirements))}, "
        f"needed by nothing {sorted(set(requirements) - set(closure))}"
    )
    for name, linux_only in closure.items():
        marker = str(requirements[name].marker or "")
        assert ("Linux" in marker) == linux_only, f"{name}: marker {marker!r}"


def third_party_imports(*directories: Path) -> dict[str, set[str]]:
    """Top-level modules imported by the Python files under ``directories``, mapped to the
    files importing them; the standard library and the project's own modules left out."""
    own = {"ddpm"} | {path.stem for directory in directories for path in directory.glob("*.py")}
    found: dict[str, set[str]] = {}
    for directory in directories:
        for path in directory.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in own:
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_code_imports_only_declared_dependencies():
    declared = set(project_dependencies())
    imports = third_party_imports(REPO / "src" / "ddpm", REPO / "workflow" / "scripts")
    undeclared = {
        module: sorted(files)
        for module, files in imports.items()
        if canonicalize_name(IMPORT_TO_PYPI.get(module, module)) not in declared
    }
    assert not undeclared, (
        f"imported but not declared in pyproject.toml: {undeclared}; "
        "add them to [project].dependencies and to workflow/envs/ddpm.yaml, or drop the import"
    )
    assert "snakemake" not in imports or all(
        "workflow/scripts" in file for file in imports["snakemake"]
    ), "the library must not import snakemake"


def test_every_rule_runs_in_the_environment():
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    text = "\n".join(path.read_text() for path in sources)
    rules = re.findall(r"^rule (\w+):", text, flags=re.M)
    conda_rules = text.count("conda:\n        ENV\n")
    aggregate = {"all", "figures", "thesis_figures"}  # no job of their own
    assert conda_rules == len(set(rules) - aggregate), "a rule without conda: ENV"
    assert 'ENV = "../envs/ddpm.yaml"' in text
    assert sorted(path.name for path in ENV_DIR.glob("*.yaml")) == ["ddpm.yaml"]
