import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

# The rules import this repository's library, whatever else is installed.
REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

# These modules need neither NumPy nor PyTorch: the workflow parses with Snakemake alone.
from ddpm.config_check import check_config  # noqa: E402
from ddpm.config_load import ConfigFileError, resolve_config  # noqa: E402
from ddpm.dataset_registry import DATASETS as DATASET_REGISTRY  # noqa: E402
from ddpm.workflow_support import (  # noqa: E402
    job_device,
    library_inputs,
    retry_runtime,
)


class ConfigError(WorkflowError):
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
    except ConfigFileError as error:
        raise ConfigError(str(error)) from None
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    problems = check_config(resolved, schema)
    if problems:
        raise ConfigError(
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
RUN = "results/{dataset}/runs/{schedule}-T{T}-seed{seed}"
# A grid cell: one schedule and T, all seeds.
CELL = "{schedule}-T{T}"


def dataset_options(name):
    """The options of a dataset, its image size defaulting to the native one."""
    options = dict(config.get("dataset_options", {}).get(name, {}))
    options.setdefault("image_size", DATASET_REGISTRY[name].native_size)
    return options


def runs_of(dataset, name, T=None, seeds=None):
    """One path per run of ``dataset`` (optionally only some T or seeds): ``RUN/name``."""
    return expand(
        f"results/{dataset}/runs/{{schedule}}-T{{T}}-seed{{seed}}/{name}",
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


def run_config(wildcards):
    """The config sections a training run reads (ddpm.spec.RunSpec.from_study_config).

    Passed as the rule's params, so that changing any of them makes the run out of date.
    """
    training = config["training"]
    return {
        "schedules": {wildcards.schedule: config["schedules"][wildcards.schedule]},
        "model": config["model"],
        "diffusion": config.get("diffusion", {}),
        "training": {
            **training,
            "device": device_for("train", training.get("device", "auto")),
        },
    }


def lib(script):
    """The library sources that workflow/scripts/``script`` imports, directly or not.

    Editing any of them makes the outputs of the step that runs the script out of date.
    """
    return library_inputs(REPO / "workflow" / "scripts" / script)


def res(kind, key, default):
    return config.get("resources", {}).get(kind, {}).get(key, default)


def attempt_runtime(kind):
    """Runtime in minutes for a rule, growing with every retry up to resources.KIND.max_runtime."""
    base, cap = res(kind, "runtime", 60), res(kind, "max_runtime", None)
    return lambda wildcards, attempt: retry_runtime(base, attempt, cap)


def device_for(kind, device):
    """``cuda`` where the rule asks for a GPU and the config leaves the device to ``auto``."""
    return job_device(device, res(kind, "gpu", 0))


# Conda environments: the heavy rules need PyTorch (CUDA build on GPU nodes), the rest
# only the scientific Python stack. See workflow/envs/ and README, "Cluster".
ENV_TORCH = "../envs/torch.yaml"
ENV_ANALYSIS = "../envs/analysis.yaml"


def train_outputs():
    outputs = {
        "model": f"{RUN}/model.pt",
        "train_log": f"{RUN}/train_log.csv",
        "record": f"{RUN}/run.json",
    }
    if config["training"].get("snapshot_every"):
        outputs["snapshots"] = f"{RUN}/snapshots.npz"
    return outputs


INCEPTION_RESOURCES = "resources/inception"


def inception_weights_provided(wildcards):
    # A function of the wildcards alone: Snakemake ignores changes of params derived from the
    # input or output, so this must not take `output`.
    options = config.get("scoring", {}).get("inception", {})
    if options.get("mode", "auto") == "off":
        return "not looked for"
    from ddpm.evaluation.weights_files import provided_weights_state

    return provided_weights_state(
        options.get("weights_path"), options.get("url"), INCEPTION_RESOURCES
    )


def inception_enabled():
    return config.get("scoring", {}).get("inception", {}).get("mode", "auto") != "off"


# Figures: which exist, what they read and which runs they need is declared in
# src/ddpm/figures.py; figures.smk makes them.
from ddpm.figures import FIGURES, dataset_figures

FIGURE_FLAGS = {
    "snapshots": bool(config["training"].get("snapshot_every")),
    "inception": inception_enabled(),
}
DATASET_FIGURES = [figure.name for figure in dataset_figures(FIGURE_FLAGS)]


def figure_inputs(wildcards):
    """The files a dataset figure reads, by the names its draw function takes."""
    figure = FIGURES[wildcards.figure]
    dataset = wildcards.dataset
    files = {
        "metrics": f"results/{dataset}/metrics.csv",
        "floor": f"results/{dataset}/floor.json",
        "data": f"results/{dataset}/data.npz",
        "interpolation": f"results/{dataset}/interpolation.npz",
    }
    if figure.run_file:
        steps = [max(STEPS)] if figure.largest_T_only else None
        seeds = SEEDS[:1] if figure.first_seed_only else None
        files["runs"] = runs_of(dataset, figure.run_file, T=steps, seeds=seeds)
    return {name: files[name] for name in figure.reads}


def figure_settings(wildcards):
    """The draw function's settings from the config's `figures` section; a setting the config
    leaves out takes the draw function's default."""
    chosen = config.get("figures", {})
    return {
        keyword: chosen[key]
        for keyword, key in FIGURES[wildcards.figure].settings
        if key in chosen
    }


def figure_files(dataset, ext="png"):
    """Every figure of a dataset."""
    return [f"results/figures/{dataset}/{name}.{ext}" for name in DATASET_FIGURES]


def figures_of_rule(rule_name):
    """The dataset figures one rule makes, as a wildcard pattern."""
    names = [name for name in DATASET_FIGURES if FIGURES[name].rule == rule_name]
    return "|".join(re.escape(name) for name in names) or "^$"


def coding_T():
    """The T of the coded runs: those the rate-distortion figure reads (src/ddpm/figures.py)."""
    return [max(STEPS)] if FIGURES["rate_distortion"].largest_T_only else STEPS


def coding_runs(dataset):
    """The ``coding.csv`` of every run the rate-distortion figure and table read."""
    return runs_of(dataset, FIGURES["rate_distortion"].run_file, T=coding_T())


def coding_benchmarks(dataset):
    """The benchmark files of the coding jobs, one per coded cell."""
    return expand(
        f"results/{dataset}/benchmarks/coding/{CELL}.tsv", schedule=SCHEDULES, T=coding_T()
    )
