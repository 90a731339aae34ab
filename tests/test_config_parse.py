"""The config the workflow uses: overlays merge onto the default, --config sets one key, and
parsing the workflow needs Snakemake alone (no NumPy, PyTorch or Matplotlib)."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from ddpm.workflow.config_load import load_config_file, parse_command_line_entry, resolve_config

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "config" / "config.yaml"
FULL_SCALE = [
    "mnist.yaml",
    "mnist5k.yaml",
    "cifar10.yaml",
    "report002_mnist.yaml",
    "report002_fgvc_aircraft.yaml",
]


def snakemake(*args, python=sys.executable, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "snakemake", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env or {**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def planned_jobs(result) -> dict[str, int]:
    assert result.returncode == 0, result.stdout + result.stderr
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M)}


def test_importing_the_config_check_leaves_out_heavy_libraries():
    code = (
        "import sys, ddpm, ddpm.workflow.config_check, ddpm.workflow.config_load, ddpm.workflow.code\n"
        "print(ddpm.__version__)\n"
        "print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'pandas') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"


def test_dry_run_imports_no_heavy_library(tmp_path):
    # A stand-in torch / torch_fidelity / matplotlib that fails on import, found first on the path:
    # the parse of the whole workflow (every rule's params and inputs included) must not need them.
    for name in ("torch", "torch_fidelity", "matplotlib"):
        package = tmp_path / "blocked" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f"raise ImportError('{name} was imported while the workflow was parsed')\n"
        )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "blocked")}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--directory", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "was imported while the workflow was parsed" not in result.stdout + result.stderr


def test_overlay_with_one_key_changes_only_that_key(tmp_path):
    overlay = tmp_path / "steps.yaml"
    overlay.write_text("training: {steps: 123}\n")
    default, merged = load_config_file(DEFAULT), resolve_config(DEFAULT, [overlay])
    assert merged["training"] == {**default["training"], "steps": 123}
    assert {k: v for k, v in merged.items() if k != "training"} == {
        k: v for k, v in default.items() if k != "training"
    }


def test_dataset_list_and_schedules_are_replaced_not_merged():
    merged = resolve_config(DEFAULT, [REPO / "config" / "mnist.yaml"])
    assert merged["datasets"] == ["mnist"]
    tiny = resolve_config(DEFAULT, [REPO / "tests" / "configs" / "tiny.yaml"])
    assert sorted(tiny["schedules"]) == ["cosine", "linear"]
    # The default cosine's beta_min is not inherited by the tiny config's cosine.
    assert tiny["schedules"]["cosine"]["params"] == {"s": 0.008, "beta_max": 0.999}
    assert sorted(tiny["analysis"]["closeness"]["schedules"]) == ["cosine", "linear"]


@pytest.mark.parametrize(
    ("entry", "key", "expected"),
    [
        ("grid={seeds: [0, 1, 2]}", ("grid", "seeds"), [0, 1, 2]),
        ("grid={T: [50, 100]}", ("grid", "T"), [50, 100]),
        ("training={steps: 100}", ("training", "steps"), 100),
        ("sampling={num_samples: 500}", ("sampling", "num_samples"), 500),
        ("training={precision: fp32}", ("training", "precision"), "fp32"),
        ("training={device: 'cuda:1'}", ("training", "device"), "cuda:1"),
        ("training.steps=100", ("training", "steps"), 100),
    ],
)
def test_command_line_sets_one_key(entry, key, expected):
    default = load_config_file(DEFAULT)
    merged = resolve_config(DEFAULT, command_line=[entry])
    section, name = key
    assert merged[section] == {**default[section], name: expected}
    assert parse_command_line_entry(entry) == {section: {name: expected}}


def test_command_line_key_reaches_the_plan(tmp_path):
    plan = planned_jobs(
        snakemake("-n", "-q", "rules", "-d", str(tmp_path), "--config", "grid={seeds: [0, 1]}")
    )
    assert plan["train"] == 30


def test_mnist_overlay_plans_no_mnist5k_job(tmp_path):
    result = snakemake("-n", "--configfile", "config/mnist.yaml", "-d", str(tmp_path))
    planned_jobs(result)
    assert "results/mnist/" in result.stdout and "mnist5k" not in result.stdout


def test_replace_workflow_config_does_not_merge(tmp_path):
    tiny = "tests/configs/tiny.yaml"
    assert planned_jobs(snakemake("-n", "-q", "rules", "--configfile", tiny, "-d", str(tmp_path)))
    replaced = snakemake(
        "-n", "--replace-workflow-config", "--configfile", tiny, "-d", str(tmp_path)
    )
    # The tiny overlay alone lacks sections the default supplies.
    assert replaced.returncode != 0
    assert "missing `diffusion`" in replaced.stdout + replaced.stderr


@pytest.fixture(scope="session")
def snakemake_only_python(tmp_path_factory) -> Path:
    """A virtual environment with Snakemake and its SLURM plugin, nothing of the library's."""
    where = tmp_path_factory.mktemp("snakemake-only")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt")]
        + ["snakemake", "snakemake-executor-plugin-slurm"],
        check=True,
        timeout=900,
    )
    return python


@pytest.mark.slow
@pytest.mark.parametrize("config", [None, *FULL_SCALE])
def test_workflow_parses_with_snakemake_alone(snakemake_only_python, tmp_path, config):
    # The SLURM plugin itself brings NumPy and pandas along (Snakemake imports every installed
    # plugin at start); that the parse imports neither is checked by the import test above.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = (
        "import importlib.util as u; print([m for m in ('torch', 'matplotlib') if u.find_spec(m)])"
    )
    found = subprocess.run(
        [snakemake_only_python, "-c", probe], capture_output=True, text=True, env=env
    )
    assert found.stdout.strip() == "[]", found.stderr
    args = [] if config is None else ["--configfile", f"config/{config}"]
    run = functools.partial(snakemake, python=snakemake_only_python, env=env)
    assert planned_jobs(run("-n", "-q", "rules", "-d", str(tmp_path), *args))["train"] >= 1
    if config is None:  # the rules are the same for every overlay: lint and draw them once
        lint = run("--lint", "-d", str(tmp_path))
        output = lint.stdout + lint.stderr
        assert "Traceback" not in output and "Error" not in output, output
        assert run("--dag", "-d", str(tmp_path)).stdout.startswith("digraph")
