import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

# The rules import this repository's library, whatever else is installed.
REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

# ddpm.workflow needs neither NumPy nor PyTorch: the workflow parses with Snakemake alone.
from ddpm import ConfigError  # noqa: E402
from ddpm.workflow.code import code_version  # noqa: E402
from ddpm.workflow.config_check import check_config  # noqa: E402
from ddpm.workflow.config_load import resolve_config  # noqa: E402
from ddpm.workflow.datasets import registry_name  # noqa: E402
from ddpm.workflow.figures import FIGURES, dataset_figures, study_figures  # noqa: E402
from ddpm.workflow.layout import (  # noqa: E402
    ANALYSIS_FILES,
    BENCHMARK,
    CELL,
    DATASET_FILES,
    FIGURE_FILE,
    LABEL_PATTERN,
    RUN_DIR,
    STUDY_FIGURES,
    provided_weights_state,
)


class StudyConfigError(WorkflowError):
    """A bad config, reported as its message alone.

    Snakemake prints the traceback of any exception raised while the Snakefile is read; for a
    mistake in the user's config file that traceback into common.smk only hides the message.
    """

    # No traceback is ever recorded, so Snakemake finds none to print.
    __traceback__ = property(lambda self: None, lambda self, value: None)


def _resolved_config():
    settings = workflow.config_settings
    try:
        resolved = resolve_config(
            REPO / "config" / "config.yaml",
            configfiles=workflow.overwrite_configfiles,
            command_line=settings.config_args or [],
            replace=settings.replace_workflow_config,
        )
    except ConfigError as error:
        raise StudyConfigError(str(error)) from None
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    problems = check_config(resolved, schema)
    if problems:
        raise StudyConfigError(
            "The configuration is not valid:\n  - " + "\n  - ".join(problems)
        )
    return resolved


# The config object the rules read is Snakemake's own dict, refilled in place.
_config = _resolved_config()
config.clear()
config.update(_config)


DATASETS = list(config["datasets"])
SCHEDULES = config["grid"]["schedules"]
STEPS = config["grid"]["T"]
SEEDS = config["grid"]["seeds"]
RUN = RUN_DIR


def runs_of(dataset, name, T=None, seeds=None):
    """One path per run of ``dataset`` (optionally only some T or seeds): ``RUN/name``."""
    return expand(
        f"{RUN}/{name}",
        dataset=dataset,
        schedule=SCHEDULES,
        T=STEPS if T is None else T,
        seed=SEEDS if seeds is None else seeds,
    )


def cell_runs(name):
    """``RUN/name`` for every seed of one cell ({dataset}, {schedule}, {T} stay wildcards).

    Sampling and scoring run one job per cell, not per seed: the seeds share the job's
    start-up (Python, PyTorch, the scorer), and each seed still gets its own file.
    """
    return expand(f"{RUN}/{name}", seed=SEEDS, allow_missing=True)


def dataset_file(name, dataset="{dataset}"):
    return DATASET_FILES[name].replace("{dataset}", dataset)


def benchmark_file(step, job):
    return BENCHMARK.replace("{step}", step).replace("{job}", job)


def run_config(wildcards):
    """The config sections a training run reads (ddpm.spec.RunSpec.from_study_config).

    Passed as the rule's params, so that changing any of them makes the run out of date.
    """
    return {
        "schedules": {wildcards.schedule: config["schedules"][wildcards.schedule]},
        "model": config["model"],
        "diffusion": config["diffusion"],
        "training": config["training"],
    }


def code(script, figure=None):
    """A digest of what the library code that workflow/scripts/``script`` imports computes (and,
    for a figure, its draw module).

    Every rule takes it as its parameter ``library_code``; an edit of the library that can change
    a rule's numbers makes its outputs out of date; a comment, a docstring, a log message, a
    version bump or a moved checkout does not (ddpm.workflow.code.code_version).
    """
    also = [figure.draw_module] if figure is not None else []
    return code_version(REPO / "workflow" / "scripts" / script, also)


# The device of every rule that can use a GPU (train, the precision decision, sample,
# reconstruct, the classifier, the floor, score): `auto` becomes `cuda` in a job that its
# profile gave a GPU (profiles/, docs/cluster.md); what a job asks of the machine (threads,
# memory, runtime, GPUs, partition) is decided by the profile alone.
DEVICE = config["training"]["device"]

# One conda environment for every rule: the packages and versions the tests use
# (constraints.txt), see workflow/envs/ and docs/cluster.md.
ENV = "../envs/ddpm.yaml"


def train_outputs():
    outputs = {
        "model": f"{RUN}/model.pt",
        "train_log": f"{RUN}/train_log.csv",
        "record": f"{RUN}/run.json",
    }
    if config["training"].get("snapshot_every"):
        outputs["snapshots"] = f"{RUN}/snapshots.npz"
    return outputs


INCEPTION = config["scoring"]["inception"]
INCEPTION_RESOURCES = "resources/inception"


def inception_weights_provided(wildcards):
    # A function of the wildcards alone: Snakemake ignores changes of params derived from the
    # input or output, so this must not take `output`.
    if INCEPTION["mode"] == "off":
        return "not looked for"
    return provided_weights_state(
        INCEPTION.get("weights_path"), INCEPTION.get("url"), INCEPTION_RESOURCES
    )


# Figures: which exist, what they read and which runs they need is declared in
# src/ddpm/workflow/figures.py; figures.smk makes them.
FIGURE_FLAGS = {
    "snapshots": bool(config["training"].get("snapshot_every")),
    "inception": INCEPTION["mode"] != "off",
}
DATASET_FIGURES = [figure.name for figure in dataset_figures(FIGURE_FLAGS)]
STUDY_FIGURE_NAMES = [figure.name for figure in study_figures()]


def figure_inputs(wildcards):
    """The files a figure reads, by the names its draw function takes."""
    figure = FIGURES[wildcards.figure]
    if not figure.per_dataset:
        return {table: ANALYSIS_FILES[table] for table in figure.reads}
    files = {
        name: dataset_file(name, wildcards.group)
        for name in figure.reads
        if name != "runs"
    }
    if figure.run_file:
        steps = [max(STEPS)] if figure.largest_T_only else None
        seeds = SEEDS[:1] if figure.first_seed_only else None
        files["runs"] = runs_of(wildcards.group, figure.run_file, T=steps, seeds=seeds)
    return {name: files[name] for name in figure.reads}


def figure_settings(wildcards):
    """The draw function's settings, from the config's `figures` section."""
    return {
        keyword: config["figures"][key]
        for keyword, key in FIGURES[wildcards.figure].settings
    }


def figure_files(group, names, ext="png"):
    return [FIGURE_FILE.format(group=group, figure=name, ext=ext) for name in names]


def coding_T():
    """The T of the coded runs: those the rate-distortion figure reads
    (src/ddpm/workflow/figures.py)."""
    return [max(STEPS)] if FIGURES["rate_distortion"].largest_T_only else STEPS


def coding_runs(dataset):
    """The ``coding.csv`` of every run the rate-distortion figure and table read."""
    return runs_of(dataset, FIGURES["rate_distortion"].run_file, T=coding_T())
