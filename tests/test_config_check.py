"""Bad configs stop before any job with a short message naming the key and what is allowed.

Most cases call the config check directly (as common.smk does); a representative subset goes
through a real `snakemake -n` to prove the wiring."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ddpm import ConfigError
from ddpm.workflow.config_check import check_config, check_study_config
from ddpm.workflow.config_load import load_config_file, resolve_config

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "config" / "config.yaml"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _set(path: str, value):
    """A change that sets the dotted key ``path`` to ``value``."""

    def change(config):
        *parents, last = path.split(".")
        for key in parents:
            config = config[key]
        config[last] = value

    return change


def _delete(path: str):
    def change(config):
        *parents, last = path.split(".")
        for key in parents:
            config = config[key]
        del config[last]

    return change


def _rename(old: str, new: str):
    def change(config):
        config[new] = config.pop(old)

    return change


# (id, change, words the message must contain: the key and what is allowed)
CASES = [
    ("misspelled_section", _rename("training", "trainin"), ["trainin", "did you mean `training`"]),
    ("misspelled_key", _set("training.stepz", 5), ["stepz", "did you mean `steps`"]),
    ("unknown_top_key", _set("colour", 1), ["colour", "allowed keys"]),
    ("missing_steps", _delete("training.steps"), ["training", "steps"]),
    ("missing_section", _delete("sampling"), ["sampling", "required"]),
    ("steps_string", _set("training.steps", "many"), ["training.steps", "integer"]),
    ("steps_zero", _set("training.steps", 0), ["training.steps", ">= 1"]),
    ("batch_size_float", _set("training.batch_size", 3.5), ["training.batch_size", "integer"]),
    ("lr_negative", _set("training.learning_rate", -1.0), ["learning_rate", "> 0"]),
    ("ema_one", _set("training.ema_decay", 1.0), ["ema_decay", "< 1"]),
    ("precision_unknown", _set("training.precision", "fp16"), ["precision", "fp32"]),
    ("device_unknown", _set("training.device", "gpu"), ["training.device", "cuda:N"]),
    ("keep_checkpoints_zero", _set("training.keep_checkpoints", 0), ["keep_checkpoints", ">= 1"]),
    (
        "divergence_below_one",
        _set("training.divergence_factor", 0.5),
        ["divergence_factor", ">= 1"],
    ),
    ("patience_zero", _set("training.divergence_patience", 0), ["divergence_patience", ">= 1"]),
    ("sampler_unknown", _set("sampling.sampler", "euler"), ["sampler", "ancestral"]),
    ("num_samples_one", _set("sampling.num_samples", 1), ["num_samples", ">= 2"]),
    ("datasets_mapping", _set("datasets", {"mnist": {}}), ["datasets", "array"]),
    ("datasets_empty", _set("datasets", []), ["datasets", "at least 1"]),
    ("dataset_unknown", _set("datasets", ["mnist6k"]), ["mnist6k", "did you mean `mnist5k`"]),
    ("dataset_option_unknown", _set("dataset_options.cifar11", {}), ["cifar11", "known datasets"]),
    ("image_size_zero", _set("dataset_options.mnist5k.image_size", 0), ["image_size", ">= 1"]),
    ("resize_mode", _set("dataset_options.mnist5k.resize_mode", "crop"), ["resize_mode", "pad"]),
    ("aircraft_without_size", _set("datasets", ["fgvc_aircraft"]), ["fgvc_aircraft.image_size"]),
    (
        "image_size_model",
        _set("dataset_options.digits.image_size", 9),
        ["image_size", "divisible"],
    ),
    ("num_groups", _set("model.num_groups", 5), ["num_groups", "divid"]),
    (
        "attention_unreachable",
        _set("model.attention_levels", [5]),
        ["attention_levels", "[0, 1]"],
    ),
    ("channel_mults_empty", _set("model.channel_mults", []), ["channel_mults", "at least 1"]),
    ("grid_T_one", _set("grid.T", [1, 50]), ["grid.T.0", ">= 2"]),
    ("grid_T_string", _set("grid.T", [50, "many"]), ["many", "integer"]),
    ("grid_T_repeated", _set("grid.T", [50, 50]), ["grid.T", "repeat"]),
    ("seeds_negative", _set("grid.seeds", [-1]), ["grid.seeds.0", ">= 0"]),
    ("grid_schedule_undefined", _set("grid.schedules", ["linear", "cosin"]), ["cosin", "cosine"]),
    (
        "beta_schedule_unknown",
        _set("schedules.linear.beta_schedule", "linaer"),
        ["linaer", "linear"],
    ),
    ("param_unknown", _set("schedules.cosine.params.beta_maxx", 0.9), ["beta_maxx", "beta_max"]),
    ("param_string", _set("schedules.linear.params.beta_end", "1e-2"), ["beta_end", "1.0e-4"]),
    ("linear_reversed", _set("schedules.linear.params.beta_start", 0.1), ["beta_start", "swap"]),
    ("betas_reach_one", _set("grid.T", [5]), ["schedules.linear at T=5", "(0, 1)"]),
    ("curves_T_betas", _set("analysis.curves_T", [4]), ["schedules.linear at T=4", "(0, 1)"]),
    ("curves_T_one", _set("analysis.curves_T", [1]), ["analysis.curves_T.0", ">= 2"]),
    (
        "closeness_param",
        _set("analysis.closeness.schedules.linear.params.beta_top", 0.1),
        ["analysis.closeness.schedules.linear", "beta_top"],
    ),
    (
        "closeness_betas",
        _set("analysis.closeness.schedules.linear.params.beta_end", 1.5),
        ["analysis.closeness.schedules.linear", "(0, 1)"],
    ),
    ("closeness_T_one", _set("analysis.closeness.T", 1), ["analysis.closeness.T", ">= 2"]),
    ("closeness_photo", _set("analysis.closeness.photo", "cat.jpg"), ["photo", "china.jpg"]),
    ("destruction_reversed", _set("analysis.destruction.beta_start", 0.5), ["destruction", "swap"]),
    (
        "forward_samples_dataset",
        _set("analysis.forward_samples.dataset", "mnsit"),
        ["analysis.forward_samples.dataset", "'mnsit'", "digits"],
    ),
    (
        "forward_samples_schedule",
        _set("analysis.forward_samples.schedule", "cosin"),
        ["analysis.forward_samples.schedule", "did you mean `cosine`", "or null"],
    ),
    ("forward_samples_T", _set("analysis.forward_samples.T", 1), ["forward_samples.T", ">= 2"]),
    ("kid_too_large", _set("scoring.kid_subset_size", 1000), ["kid_subset_size", "at most 200"]),
    ("isc_splits_too_large", _set("scoring.isc_splits", 500), ["isc_splits", "at most 200"]),
    ("prc_too_large", _set("scoring.prc_neighborhood", 300), ["prc_neighborhood", "smaller"]),
    ("grid_samples_too_large", _set("figures.grid_samples", 201), ["grid_samples", "at most 200"]),
    (
        "ddim_steps",
        _set(
            "sampling",
            {
                "num_samples": 100,
                "sampler": "ddim",
                "ddim_steps": 60,
                "batch_size": 100,
                "precision": "auto",
            },
        ),
        ["ddim_steps", "<= T"],
    ),
    ("inception_mode", _set("scoring.inception.mode", "maybe"), ["inception.mode", "required"]),
    (
        "prediction_unknown",
        _set("diffusion.prediction", "epsilon"),
        ["diffusion.prediction", "'epsilon'", "eps, x0, v, mu"],
    ),
    (
        "prediction_mu_smooth_l1",
        _set("diffusion", {"prediction": "mu", "loss": "smooth_l1"}),
        ["diffusion: prediction 'mu' cannot be trained with loss 'smooth_l1'", "use loss 'mse'"],
    ),
    (
        "label_prediction_mu_smooth_l1",
        _set(
            "schedules.cosine.diffusion",
            {"prediction": "mu", "loss": "smooth_l1"},
        ),
        ["schedules.cosine.diffusion: prediction 'mu'", "loss 'smooth_l1'"],
    ),
    (
        "label_prediction_unknown",
        _set("schedules.cosine.diffusion", {"prediction": "x_0"}),
        ["schedules.cosine.diffusion.prediction", "did you mean `x0`"],
    ),
    (
        "closeness_diffusion",
        _set("analysis.closeness.schedules.linear.diffusion", {"prediction": "v"}),
        ["analysis.closeness.schedules.linear.diffusion", "trains no model"],
    ),
]


def _default() -> dict:
    return load_config_file(DEFAULT)


def test_shipped_configs_pass():
    assert check_config(_default(), SCHEMA) == []
    for path in [TINY, *sorted((REPO / "config").glob("*.yaml"))]:
        assert check_config(resolve_config(DEFAULT, [path]), SCHEMA) == [], path


@pytest.mark.parametrize(("change", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_config_is_named_briefly(change, words):
    config = copy.deepcopy(_default())
    change(config)
    problems = check_config(config, SCHEMA)
    message = "\n".join(problems)
    assert problems, "the config was accepted"
    for word in words:
        assert word in message, message
    assert len(message.splitlines()) <= 10 and "Traceback" not in message, message


def test_at_least_forty_cases():
    assert len(CASES) >= 40


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_duplicate_key_is_rejected_with_its_line(tmp_path):
    path = _write(tmp_path / "dup.yaml", "training:\n  steps: 10\n  steps: 20\n")
    with pytest.raises(ConfigError, match=r"dup.yaml, line 3.*duplicate key 'steps'.*line 2"):
        load_config_file(path)


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    path = _write(tmp_path / "bad.yaml", "training:\n  steps: [10\nsampling: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line \d+, column \d+"):
        load_config_file(path)


def test_tab_indentation_is_explained(tmp_path):
    path = _write(tmp_path / "tab.yaml", "training:\n\tsteps: 10\n")
    with pytest.raises(ConfigError, match=r"tab.yaml, line 2, column 1.*tabs"):
        load_config_file(path)


def test_empty_file_is_named(tmp_path):
    path = _write(tmp_path / "empty.yaml", "# nothing\n")
    with pytest.raises(ConfigError, match=r"empty.yaml: the file is empty"):
        load_config_file(path)


def snakemake(*args, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


# Through real Snakemake: one schema error, one semantic error, one YAML-level error.
WIRED = {
    "misspelled_section": "training:\n  stepz: 10\n",
    "betas_reach_one": "grid: {T: [5]}\n",
    "duplicate_key": "sampling: {num_samples: 10}\nsampling: {num_samples: 20}\n",
}


@pytest.mark.parametrize("name", sorted(WIRED))
def test_snakemake_stops_before_any_job_with_a_short_message(tmp_path, name):
    bad = _write(tmp_path / f"{name}.yaml", WIRED[name])
    result = snakemake("-n", "--configfile", str(bad), "-d", str(tmp_path / "run"))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0
    assert re.search(r"stepz|T=5|duplicate key", output), output
    assert len(output.splitlines()) <= 10 and 'File "' not in output, output
    assert not (tmp_path / "run" / "results").exists()


def test_command_line_check_names_the_line(tmp_path, capsys):
    from ddpm.workflow.config_check import main

    bad = _write(tmp_path / "tab.yaml", "training:\n\tsteps: 10\n")
    assert main([str(bad)]) == 1
    assert "tab.yaml, line 2, column 1" in capsys.readouterr().err
    assert main([str(REPO / "config" / "mnist.yaml")]) == 0


# --- the study checks, called directly ------------------------------------------------------
@pytest.fixture
def default_config():
    return resolve_config(DEFAULT)


def test_study_check_passes_the_default_config(default_config):
    assert check_study_config(default_config) == []


def test_study_check_names_ddim_steps_and_the_smallest_T(default_config):
    default_config["sampling"].update(sampler="ddim", ddim_steps=80)
    default_config["grid"]["T"] = [400, 60, 200]
    (problem,) = check_study_config(default_config)
    assert problem.startswith("sampling.ddim_steps = 80 exceeds the smallest T of the grid (60)")


def test_study_check_builds_the_model_for_each_dataset_size(default_config):
    default_config["model"]["num_groups"] = 3
    (problem,) = check_study_config(default_config)
    assert problem.startswith("model (for digits at image_size 8): UNetConfig.num_groups=3")
    assert "16 channels" in problem


def test_study_check_names_swapped_schedule_ends(default_config):
    default_config["schedules"]["linear"]["params"].update(beta_start=0.02, beta_end=0.01)
    (problem,) = check_study_config(default_config)
    assert problem == (
        "schedules.linear.params: beta_start (0.02) is larger than beta_end (0.01); "
        "the betas must grow with t: swap them"
    )


def test_study_check_compares_sample_counts_with_num_samples(default_config):
    n = default_config["sampling"]["num_samples"]
    default_config["scoring"]["kid_subset_size"] = n + 1
    (problem,) = check_study_config(default_config)
    assert problem.startswith(f"scoring.kid_subset_size = {n + 1} is larger than")
    assert f"sampling.num_samples ({n})" in problem


def test_a_study_that_still_sets_resources_is_told_where_they_moved():
    config = resolve_config(DEFAULT, [TINY])
    config["resources"] = {"train": {"threads": 8, "gpu": 1}}
    problems = check_config(config, SCHEMA)
    assert len(problems) == 1, problems
    assert problems[0].startswith("resources: ")
    assert "profile" in problems[0] and "set-resources" in problems[0]
    assert "docs/cluster.md" in problems[0]
