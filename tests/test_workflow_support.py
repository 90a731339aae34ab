"""Rule library inputs follow the scripts' imports; retries ask for capped runtime; GPU jobs
are told to use CUDA; the library dataclasses are the one source of config defaults."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ddpm.workflow_support import (
    imported_modules,
    job_device,
    library_inputs,
    literal_defaults,
    retry_runtime,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("*.py"))
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _ddpm_imports(script: Path) -> set[str]:
    """The ddpm modules Python loads when running ``script``'s ddpm imports."""
    lines = [
        line
        for line in script.read_text().splitlines()
        if line.startswith(("from ddpm", "import ddpm"))
    ]
    code = "\n".join(
        [
            *lines,
            "import sys, json",
            "print(json.dumps(sorted(m for m in sys.modules if m == 'ddpm' or m.startswith('ddpm.'))))",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_closure_of_every_script_is_what_python_imports():
    # One interpreter per script is costly; the scripts whose imports differ most suffice.
    for name in ["run_figure.py", "metric_figure.py", "report.py", "score.py", "train.py"]:
        script = REPO / "workflow" / "scripts" / name
        assert imported_modules(script, top_level_only=True) == _ddpm_imports(script), name


def test_lazy_imports_are_inputs_too():
    for script in SCRIPTS:
        assert imported_modules(script, top_level_only=True) <= imported_modules(script)
    # plots.runs imports sampling and results inside its functions (review F10).
    run_figure = {Path(p).name for p in library_inputs(REPO / "workflow/scripts/run_figure.py")}
    assert {"sampling.py", "results.py", "runs.py", "files.py"} <= run_figure


def test_editing_an_indirectly_used_module_reruns_the_rule(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for name in ["Snakefile", "workflow", "src", "config"]:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, work / name)
    target = "results/analysis/schedules.csv"
    (work / target).parent.mkdir(parents=True)
    (work / target).write_text("t\n")

    def plan() -> str:
        env = {**os.environ, "PYTHONPATH": ""}
        command = [sys.executable, "-m", "snakemake", "-n", target, "--quiet", "rules"]
        out = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout + out.stderr

    assert "Nothing to be done" in plan()
    time.sleep(1.1)  # a later modification time than the output's
    diffusion = work / "src" / "ddpm" / "diffusion.py"  # imported by analysis, not by the script
    diffusion.write_text(diffusion.read_text() + "\n# edited\n")
    assert "schedule_table" in plan()


def test_literal_defaults_are_the_library_signature():
    from ddpm.evaluation.scoring import compute_metrics
    from ddpm.sampling import generate

    for relative, function in [
        ("evaluation/scoring.py", compute_metrics),
        ("sampling.py", generate),
    ]:
        real = {
            k: p.default
            for k, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        assert literal_defaults(relative, function.__name__) == real


def test_literal_defaults_of_a_method_are_its_signature():
    from ddpm.diffusion import GaussianDiffusion

    real = {
        k: p.default
        for k, p in inspect.signature(GaussianDiffusion.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    assert literal_defaults("diffusion.py", "GaussianDiffusion.__init__") == real
    with pytest.raises(LookupError, match="GaussianDiffusion.sample_all"):
        literal_defaults("diffusion.py", "GaussianDiffusion.sample_all")


def test_retry_runtime_grows_up_to_the_cap():
    assert [retry_runtime(720, attempt) for attempt in (1, 2, 3)] == [720, 1440, 2160]
    assert [retry_runtime(720, attempt, 1440) for attempt in (1, 2, 3)] == [720, 1440, 1440]
    with pytest.raises(ValueError, match="attempt"):
        retry_runtime(60, 0)


def test_gpu_jobs_are_told_to_use_cuda():
    assert job_device("auto", 1) == "cuda"
    assert job_device("auto", 0) == "auto"
    assert job_device("cuda:1", 1) == "cuda:1" and job_device("cpu", 1) == "cpu"


def _no_defaults(node) -> bool:
    if isinstance(node, dict):
        return "default" not in node and all(_no_defaults(v) for v in node.values())
    if isinstance(node, list):
        return all(_no_defaults(v) for v in node)
    return True


def _section_validates(section: str, values: dict) -> None:
    import jsonschema

    # The section as a schema of its own; its $refs point at the root's definitions.
    schema = {**SCHEMA["properties"][section], "definitions": SCHEMA["definitions"]}
    jsonschema.Draft202012Validator(schema).validate(values)


def test_library_dataclasses_are_the_one_source_of_defaults():
    from ddpm.training import TrainingConfig
    from ddpm.unet import UNetConfig

    assert _no_defaults(SCHEMA), "the schema must not carry defaults of its own"
    set_by_workflow = {"seed", "num_threads"}
    training = {f.name: f for f in dataclasses.fields(TrainingConfig)}
    schema_training = set(SCHEMA["properties"]["training"]["properties"])
    # Every library setting can be set from the config (keep_checkpoints included).
    assert set(training) - set_by_workflow <= schema_training
    model = {f.name for f in dataclasses.fields(UNetConfig)} - {"image_channels", "image_size"}
    assert model == set(SCHEMA["properties"]["model"]["properties"])
    # The library's defaults are values the schema accepts.
    defaults = {
        name: f.default
        for name, f in training.items()
        if name not in set_by_workflow and f.default is not dataclasses.MISSING
    }
    _section_validates("training", {"steps": 1, **defaults})
    unet = UNetConfig().to_dict()
    _section_validates("model", {k: unet[k] for k in model})


def test_type_checking_imports_are_not_inputs(tmp_path):
    package = tmp_path / "ddpm"
    package.mkdir()
    for name in ["__init__", "annotated", "hinted", "hinted_too", "fallback"]:
        (package / f"{name}.py").write_text("")
    (package / "uses.py").write_text(
        "import typing\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .hinted import A\n"
        "else:\n"
        "    from .fallback import A\n"
        "if typing.TYPE_CHECKING:\n"
        "    from . import hinted_too\n"
        "if A:\n"
        "    from . import annotated\n"
    )
    script = tmp_path / "script.py"
    script.write_text("from ddpm.uses import A\n")
    found = imported_modules(script, package_dir=package)
    assert found == {"ddpm", "ddpm.uses", "ddpm.fallback", "ddpm.annotated"}


def test_the_run_spec_reads_without_the_classes_it_builds(tmp_path):
    # spec.py names them in its annotations (and imports them where it builds them): reading
    # a spec, as the config check does, loads none of their PyTorch code.
    script = tmp_path / "script.py"
    script.write_text("from ddpm.spec import RunSpec\n")
    found = imported_modules(script, top_level_only=True)
    assert "ddpm.spec" in found
    assert not found & {"ddpm.diffusion", "ddpm.schedules", "ddpm.training.config"}
