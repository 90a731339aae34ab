"""A rule's code version follows what its script's imports compute; a job's GPU request is read
from its resources; the library dataclasses are the one source of config defaults."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ddpm.runtime import gpu_request
from ddpm.workflow.code import (
    code_version,
    computing_source,
    imported_modules,
    literal_defaults,
    module_closure,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "workflow" / "scripts").glob("*.py"))
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _ddpm_imports(script: Path) -> set[str]:
    """The ddpm modules Python loads when running ``script``'s ddpm imports."""
    lines = [
        ast.unparse(node)
        for node in ast.parse(script.read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and ast.unparse(node).split()[1] == "ddpm"
        or ast.unparse(node).startswith(("from ddpm.", "import ddpm."))
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
    for name in ["figure.py", "report.py", "score.py", "train.py", "closeness.py"]:
        script = REPO / "workflow" / "scripts" / name
        assert imported_modules(script, top_level_only=True) == _ddpm_imports(script), name


def test_lazy_imports_are_inputs_too():
    for script in SCRIPTS:
        assert imported_modules(script, top_level_only=True) <= imported_modules(script)
    # plots.runs imports sampling and results inside its functions (review F10).
    runs = {m.removeprefix("ddpm.") for m in module_closure("ddpm.plots.runs")}
    assert {"sampling", "results", "plots.runs", "files"} <= runs


def test_the_forward_analysis_does_not_depend_on_the_training():
    # Editing the training loop reruns what it trains, not the analysis or the schedule table.
    for name in ("closeness.py", "schedule_table.py", "destruction.py", "forward_samples.py"):
        modules = imported_modules(REPO / "workflow" / "scripts" / name)
        assert not {m for m in modules if m.startswith("ddpm.training")}, (name, sorted(modules))


def test_editing_an_indirectly_used_module_reruns_the_rule(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for name in ["Snakefile", "workflow", "src", "config"]:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, work / name)
    target = "results/analysis/schedules.csv"

    def snakemake(*args) -> str:
        env = {**os.environ, "PYTHONPATH": "", "MPLBACKEND": "Agg"}
        command = [sys.executable, "-m", "snakemake", target, "--cores", "1", *args]
        out = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout + out.stderr

    snakemake()
    assert "Nothing to be done" in snakemake("-n")
    # imported by the analysis, not by the script: a change of what it computes reruns it
    formulas = work / "src" / "ddpm" / "beta_formulas.py"
    source = formulas.read_text()
    formulas.write_text(source + "\n# a comment changes nothing\n")
    assert "Nothing to be done" in snakemake("-n")
    formulas.write_text(source.replace("scale = 1000.0 / T", "scale = 1000.0 / (T + 0)", 1))
    assert "schedule_table" in snakemake("-n")


def test_computing_source_ignores_what_only_people_read(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        '"""Doc."""\n__version__ = "1.0"\nimport logging\nlog = logging.getLogger()\n'
        "def f(x):\n"
        '    """Doc."""\n'
        '    log.info("x is %s", x)  # a comment\n'
        "    if x < 0:\n"
        '        raise ValueError(f"x must be >= 0, got {x}")\n'
        '    print("done")\n'
        "    return 2 * x\n"
    )
    before = computing_source(module)
    module.write_text(
        '"""Other doc."""\n__version__ = "2.0"\nimport logging\nlog = logging.getLogger()\n'
        "def f(x):\n"
        "    # comments come and go\n"
        '    log.info("now x = %s", x)\n'
        "    if x < 0:\n"
        '        raise ValueError("negative")\n'
        '    print("finished")\n'
        "    return 2 * x\n"
    )
    assert computing_source(module) == before
    module.write_text(module.read_text().replace("2 * x", "3 * x"))
    assert computing_source(module) != before
    module.write_text(module.read_text().replace("ValueError", "TypeError"))
    assert computing_source(module) != before


def test_code_versions_follow_each_scripts_imports():
    scripts = REPO / "workflow" / "scripts"
    versions = {name: code_version(scripts / name) for name in ("train.py", "report.py")}
    assert versions["train.py"] != versions["report.py"]
    assert versions["train.py"] == code_version(scripts / "train.py")


def test_a_jobs_gpu_request_is_read_from_its_resources():
    assert gpu_request({"gres": "gpu:1"}) == "gres=gpu:1"
    assert gpu_request({"gres": "gpu:a100:1", "gpu": 0}) == "gres=gpu:a100:1"
    assert gpu_request({"gres": "tmp:10G,gpu:2"}) == "gres=tmp:10G,gpu:2"
    assert gpu_request({"gpu": 1}) == "gpu=1"
    for none in ({}, {"gpu": 0}, {"gres": None}, {"gres": "tmp:10G"}, {"gpu": 0, "gres": ""}):
        assert gpu_request(none) is None, none


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
    from ddpm.training.config import TrainingConfig
    from ddpm.unet_config import UNetConfig

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
