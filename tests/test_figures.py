"""The figure registry: every figure declared once, complete, drawable, light to import; a
new entry reaches the workflow's outputs and the report without touching a rule."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import yaml
from conftest import copy_workflow
from PIL import Image

from ddpm.workflow.code import PACKAGE_DIR, code_version
from ddpm.workflow.figures import (
    ANALYSIS_TABLES,
    DATASET_INPUTS,
    FIGURES,
    FLAGS,
    SECTIONS,
    Figure,
    dataset_figures,
    draw_figure,
    figure_caption,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("figure", FIGURES.values(), ids=list(FIGURES))
def test_every_figure_is_complete_and_its_draw_function_takes_what_it_reads(figure):
    assert FIGURES[figure.name] is figure
    assert figure.caption.strip() and figure.section in SECTIONS
    allowed = DATASET_INPUTS if figure.per_dataset else ANALYSIS_TABLES
    assert set(figure.reads) <= set(allowed), figure.reads
    assert ("runs" in figure.reads) == (figure.run_file is not None)
    assert set(figure.needs) <= set(FLAGS)
    parameters = inspect.signature(figure.draw_function()).parameters
    keywords = [*figure.reads, *dict(figure.options), *dict(figure.settings)]
    assert set(keywords) <= set(parameters), f"{figure.draw} does not take {keywords}"
    required = {n for n, p in parameters.items() if p.default is inspect.Parameter.empty}
    assert required <= set(keywords), f"{figure.draw} needs {required - set(keywords)}"


def test_editing_a_draw_module_reruns_its_figures_and_no_other(tmp_path):
    # The figure rule's code version covers the figure script and the figure's draw module
    # with everything that module imports (workflow/rules/common.smk, `code`).
    import shutil

    package = tmp_path / "ddpm"
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    script = REPO / "workflow" / "scripts" / "figure.py"

    def versions():
        return {
            name: code_version(script, [figure.draw_module], package)
            for name, figure in FIGURES.items()
        }

    before = versions()
    runs = package / "plots" / "runs.py"
    runs.write_text(runs.read_text().replace("figsize=(", "figsize=(0.5 + ", 1))
    changed = {name for name, version in versions().items() if version != before[name]}
    assert changed == {n for n, f in FIGURES.items() if f.draw_module == "ddpm.plots.runs"}


def test_the_registry_imports_only_the_standard_library():
    code = (
        "import sys, ddpm.workflow.figures as f; f.dataset_figures({}); f.study_figures(); "
        "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_which_figures_a_study_makes_follows_its_settings():
    plain = {f.name for f in dataset_figures({"snapshots": False, "inception": False})}
    assert "training_progress" not in plain and "inception_fid_vs_T" not in plain
    assert {"loss_curves", "classifier_fid_vs_T", "best_cell"} <= plain
    every = {f.name for f in dataset_figures({"snapshots": True, "inception": True})}
    assert every - plain == {
        "training_progress",
        "inception_fid_vs_T",
        "inception_kid_vs_T",
        "inception_is_vs_T",
    }
    assert FIGURES["reconstruction"].largest_T_only and not FIGURES["sample_grids"].largest_T_only


def test_metric_captions_name_their_feature_extractor():
    assert figure_caption("inception_fid_vs_T").endswith("Features: torch-fidelity's Inception-v3.")
    assert figure_caption("classifier_kid_vs_T").startswith("KID against T")
    assert figure_caption("not_registered") == "not registered"


def test_draw_figure_names_what_is_missing():
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        draw_figure("nope", {})
    with pytest.raises(ValueError, match=r"missing \['floor'\]"):
        draw_figure("classifier_fid_vs_T", {"metrics": "metrics.csv"})


def draw_constant(metrics: str, level: float = 0.0) -> plt.Figure:
    """A test figure: the number of lines of the metrics table, at height ``level``."""
    fig, ax = plt.subplots()
    ax.axhline(len(Path(metrics).read_text().splitlines()) + level)
    return fig


EXTRA = Figure(
    "table_length",
    f"{__name__}:draw_constant",
    "How long the metrics table is.",
    "training",
    reads=("metrics",),
    options=(("level", 0.5),),
)


def test_a_new_entry_is_drawn_with_its_inputs_and_options(monkeypatch, tmp_path):
    monkeypatch.setitem(FIGURES, EXTRA.name, EXTRA)
    (tmp_path / "metrics.csv").write_text("a\n1\n2\n")
    figure = draw_figure("table_length", {"metrics": str(tmp_path / "metrics.csv")})
    assert figure.axes[0].get_lines()[0].get_ydata()[0] == 3.5
    plt.close(figure)


def test_a_new_entry_shows_up_in_its_report_section_with_its_caption(monkeypatch, tmp_path):
    from test_report import synthetic_runs

    from ddpm.report.build import DatasetResults, _dataset_sections

    monkeypatch.setitem(FIGURES, EXTRA.name, EXTRA)
    Image.new("RGB", (4, 4)).save(tmp_path / "table_length.png")
    dataset = DatasetResults(
        "digits", synthetic_runs(), {}, 0.9, {"table_length": tmp_path / "table_length.png"}
    )
    sections = dict(_dataset_sections(dataset, 10, "offline"))
    assert 'alt="table_length"' in sections["digits: training"]
    assert "How long the metrics table is." in sections["digits: training"]
    assert "table_length" not in sections["digits: samples"]


def _plan_tiny_study(work: Path) -> tuple[str, str]:
    """The tiny study's dataset and Snakemake's dry-run plan of it in the workflow copy ``work``."""
    (dataset,) = yaml.safe_load((work / "tests/configs/tiny.yaml").read_text())["datasets"]
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1"]
    command += ["--configfile", "tests/configs/tiny.yaml"]
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return dataset, out.stdout + out.stderr


def test_a_new_entry_becomes_a_workflow_output(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    registry = work / "src" / "ddpm" / "workflow" / "figures.py"
    registry.write_text(
        registry.read_text()
        + "\nFIGURES['table_length'] = Figure('table_length', 'ddpm.plots.metrics:x', 'c', "
        "'quality', reads=('metrics',))\n"
    )
    dataset, plan = _plan_tiny_study(work)
    output = f"results/figures/{dataset}/table_length.png"
    assert output in plan
    # Made by the figure rule, and read by the report.
    job = plan[: plan.index(output)].rsplit("rule ", 1)[1]
    assert job.startswith("figure:")
    report_job = plan[plan.index("rule report:") :].split("rule ", 2)[1]
    assert output in report_job


def test_a_figure_with_a_new_input_names_the_file_once_and_its_rule_makes_it(tmp_path):
    # The README's steps (Layout, "a figure that needs a new input"): the file in DATASET_FILES,
    # its key in DATASET_INPUTS, a rule that writes it, and the figure that reads it.
    work = copy_workflow(tmp_path / "repo")
    layout = work / "src" / "ddpm" / "workflow" / "layout.py"
    layout.write_text(
        layout.read_text().replace(
            "DATASET_FILES = {\n",
            'DATASET_FILES = {\n    "loss_table": "results/{dataset}/loss_table.csv",\n',
        )
    )
    registry = work / "src" / "ddpm" / "workflow" / "figures.py"
    registry.write_text(
        registry.read_text().replace(
            'DATASET_INPUTS = ("runs",', 'DATASET_INPUTS = ("loss_table", "runs",'
        )
        + "\nFIGURES['loss_table_figure'] = Figure('loss_table_figure', 'ddpm.plots.metrics:x', "
        "'c', 'training', reads=('loss_table',))\n"
    )
    rules = work / "workflow" / "rules" / "figures.smk"
    rules.write_text(
        rules.read_text() + '\n\nrule loss_table:\n    input:\n        DATASET_FILES["metrics"],\n'
        '    output:\n        DATASET_FILES["loss_table"],\n    shell:\n        "cp {input} {output}"\n'
    )
    dataset, plan = _plan_tiny_study(work)
    table = f"results/{dataset}/loss_table.csv"
    figure_job = next(
        job for job in plan.split("rule ") if f"figures/{dataset}/loss_table_figure.png" in job
    )
    assert job_is("figure", figure_job) and table in figure_job
    table_job = next(job for job in plan.split("rule ") if f"output: {table}" in job)
    assert job_is("loss_table", table_job)


def job_is(rule: str, job: str) -> bool:
    return job.startswith(f"{rule}:")
