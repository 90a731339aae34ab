import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The rules import this repository's library, whatever else is installed.
REPO = Path(workflow.basedir)
sys.path.insert(0, str(REPO / "src"))

from ddpm.config_check import check_study_config, library_files  # noqa: E402

validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
_problems = check_study_config(config)
if _problems:
    raise WorkflowError(
        "The configuration is not valid:\n  - " + "\n  - ".join(_problems)
    )


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    schedule="[A-Za-z0-9_]+",
    T=r"\d+",
    seed=r"\d+",


DATASETS = list(config["datasets"])
SCHEDULES = config["grid"]["schedules"]
STEPS = config["grid"]["T"]
SEEDS = config["grid"]["seeds"]
RUN = "results/{dataset}/runs/{schedule}-T{T}-seed{seed}"


def runs_of(dataset, name, T=None):
    """One path per grid cell of ``dataset`` (optionally only some T): ``RUN/name``."""
    return expand(
        f"results/{dataset}/runs/{{schedule}}-T{{T}}-seed{{seed}}/{name}",
        schedule=SCHEDULES,
        T=STEPS if T is None else T,
        seed=SEEDS,
    )


def schedule_spec(wildcards):
    """The beta schedule of a grid cell: name, T and explicit parameters."""
    definition = config["schedules"][wildcards.schedule]
    return {
        "beta_schedule": definition["beta_schedule"],
        "T": int(wildcards.T),
        "params": definition.get("params", {}),
    }


def lib(*modules):
    """The library sources a rule depends on; editing them makes its outputs out of date."""
    return library_files(REPO / "src" / "ddpm", modules)


def attempt_runtime(kind):
    """Runtime in minutes for a rule, doubled on every retry (time limits, preemption)."""
    base = config.get("resources", {}).get(kind, {}).get("runtime", 60)
    return lambda wildcards, attempt: base * attempt


def res(kind, key, default):
    return config.get("resources", {}).get(kind, {}).get(key, default)


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


def inception_enabled():
    return config.get("scoring", {}).get("inception", {}).get("mode", "auto") != "off"


def dataset_figures(dataset, ext="png"):
    """Every figure of a dataset (names from figures.smk)."""
    names = list(RUN_FIGURES) + METRIC_FIGURES
    return [f"results/figures/{dataset}/{name}.{ext}" for name in names]
