"""The conda environments of the workflow's rules (workflow/envs/*.yaml).

A rule job on a cluster sees only its conda environment (plus this checkout's src/), so
each environment must hold every package the library imports, pinned to a version that
exists, from conda-forge alone. These tests keep the environment files, pyproject.toml and
the code's imports in step.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
ENV_DIR = REPO / "workflow" / "envs"
ENV_FILES = sorted(ENV_DIR.glob("*.yaml"))

#: conda-forge package name -> the PyPI distribution it provides.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "matplotlib-base": "matplotlib",
    "seaborn-base": "seaborn",
}
#: Packages an environment needs to exist at all, not imported by the code.
INFRASTRUCTURE = {"python", "pip"}
#: Top-level import name -> PyPI distribution, where they differ.
IMPORT_TO_PYPI = {
    "torch_fidelity": "torch-fidelity",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "PIL": "pillow",
}
#: The heavy environment may pick a CUDA build; the light one must stay on CPU builds.
GPU_ENV, CPU_ENV = "torch.yaml", "analysis.yaml"

# name=version, name=version=build or name==version (conda match specs, no ranges).
CONDA_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9_.-]+)={1,2}(?P<version>[0-9][^=\s]*)(=(?P<build>\S+))?$"
)


def load_env(path: Path) -> dict:
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict), f"{path.name}: not a YAML mapping"
    return env


def conda_specs(env: dict) -> list[str]:
    return [spec for spec in env["dependencies"] if isinstance(spec, str)]


def pip_specs(env: dict) -> list[str]:
    sections = [spec["pip"] for spec in env["dependencies"] if isinstance(spec, dict)]
    return [spec for section in sections for spec in section]


def pinned_versions(env: dict) -> dict[str, Version]:
    """PyPI distribution name -> pinned version, over conda and pip entries."""
    versions = {}
    for spec in conda_specs(env):
        match = CONDA_PIN.match(spec)
        assert match, f"{spec!r} is not pinned as name=version"
        name = CONDA_TO_PYPI.get(match["name"], match["name"])
        versions[canonicalize_name(name)] = Version(match["version"])
    for spec in pip_specs(env):
        requirement = Requirement(spec)
        (specifier,) = requirement.specifier
        versions[canonicalize_name(requirement.name)] = Version(specifier.version)
    return versions


def project_dependencies() -> dict[str, Requirement]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    requirements = [Requirement(spec) for spec in pyproject["project"]["dependencies"]]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


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


def test_there_are_environments():
    assert {path.name for path in ENV_FILES} >= {GPU_ENV, CPU_ENV}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda path: path.name)
def test_environment_uses_conda_forge_only(path):
    env = load_env(path)
    # nodefaults keeps Anaconda's default channel (other licence, other builds) out even
    # where a user's .condarc lists it.
    assert env["channels"] == ["conda-forge", "nodefaults"]


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda path: path.name)
def test_every_package_is_pinned(path):
    env = load_env(path)
    for spec in conda_specs(env):
        assert CONDA_PIN.match(spec), f"{path.name}: {spec!r} is not pinned as name=version"
    for spec in pip_specs(env):
        specifiers = list(Requirement(spec).specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{path.name}: pip entry {spec!r} is not pinned as name==version"
        )
    if pip_specs(env):
        assert any(CONDA_PIN.match(spec)["name"] == "pip" for spec in conda_specs(env)), (
            f"{path.name} has a pip: section but does not install pip itself"
        )


def code_dependencies() -> set[str]:
    """PyPI names of what the library and the rule scripts import."""
    imports = third_party_imports(REPO / "src" / "ddpm", REPO / "workflow" / "scripts")
    return {canonicalize_name(IMPORT_TO_PYPI.get(module, module)) for module in imports}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda path: path.name)
def test_environment_holds_exactly_what_the_project_needs(path):
    """Every dependency of pyproject.toml and every package the code imports is in the
    environment, at a version that meets pyproject's bound, and nothing else."""
    versions = pinned_versions(load_env(path))
    declared = project_dependencies()
    needed = set(declared) | code_dependencies()
    packages = set(versions) - INFRASTRUCTURE
    assert packages == needed, (
        f"{path.name}: missing {sorted(needed - packages)}, "
        f"needed by nothing {sorted(packages - needed)}"
    )
    for name, requirement in declared.items():
        assert requirement.specifier.contains(versions[name]), (
            f"{path.name}: {name} {versions[name]} does not satisfy pyproject's {requirement}"
        )


def test_cpu_environment_cannot_pull_a_cuda_build():
    for spec in conda_specs(load_env(ENV_DIR / CPU_ENV)):
        match = CONDA_PIN.match(spec)
        if match["name"] in {"pytorch", "torchvision"}:
            assert match["build"] == "cpu*", f"{CPU_ENV}: {spec!r} may resolve to a CUDA build"


def test_gpu_environment_lets_the_solver_pick_a_cuda_build():
    for spec in conda_specs(load_env(ENV_DIR / GPU_ENV)):
        match = CONDA_PIN.match(spec)
        if match["name"] in {"pytorch", "torchvision"}:
            assert match["build"] is None, f"{GPU_ENV}: {spec!r} fixes the build"


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
        "add them to [project].dependencies and to workflow/envs/*.yaml, or drop the import"
    )
    assert "snakemake" not in imports or all(
        "workflow/scripts" in file for file in imports["snakemake"]
    ), "the library must not import snakemake"


def test_rules_name_existing_environments_and_every_environment_is_used():
    sources = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    text = "\n".join(path.read_text() for path in sources if path.exists())
    if "conda:" not in text:
        pytest.skip("no rule names a conda environment yet")
    referenced = set(re.findall(r"envs/([\w.-]+\.ya?ml)", text))
    assert referenced, "rules use conda: but no workflow/envs/*.yaml path was found"
    assert referenced <= {path.name for path in ENV_FILES}, (
        f"rules name missing environments: {sorted(referenced - {p.name for p in ENV_FILES})}"
    )
    assert {path.name for path in ENV_FILES} <= referenced, "an environment no rule uses"
