"""The profiles are the one place that decides what a job asks of the machine.

Every rule whose script runs on a GPU when it has one asks for it in the GPU profiles, in one
form, written once; every other job asks for none; the conda profiles are their plain twins
with one more line; and every shipped study config plans that way through the SLURM profile,
with the plugin's own translation into sbatch options.
"""

from __future__ import annotations

import re
import shutil

import pytest
import yaml
from conftest import REPO, TINY_CONFIG, copy_workflow, run_snakemake_locally
from snakemake_executor_plugin_slurm.utils import set_gres_string

PROFILES = REPO / "profiles"
CONFIGS = sorted(p.name for p in (REPO / "config").glob("*.yaml"))


def profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def gpu_capable_rules() -> set[str]:
    """The rules whose script picks its device from its GPU request (script_setup.device)."""
    scripts = {
        path.name
        for path in (REPO / "workflow" / "scripts").glob("*.py")
        if "script_setup.device(snakemake)" in path.read_text()
    }
    rules = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n|\n)*)", smk.read_text(), re.M):
            script = re.search(r'"\.\./scripts/([\w.]+)"', body)
            if script and script[1] in scripts:
                rules.add(rule)
    return rules


def test_the_gpu_capable_rules_are_the_documented_ones():
    assert gpu_capable_rules() == {
        "train",
        "decide_precision",
        "sample",
        "reconstruct",
        "coding",
        "interpolate",
        "train_classifier",
        "real_floor",
        "score",
    }
    docs = (REPO / "docs" / "cluster.md").read_text()
    for rule in gpu_capable_rules():
        assert f"`{rule}`" in docs, f"docs/cluster.md does not name {rule}"


@pytest.mark.parametrize("plain", ["local", "slurm"])
def test_conda_profiles_are_the_plain_ones_with_conda(plain):
    settings, conda = profile(plain), profile(f"{plain}-conda")
    assert "software-deployment-method" not in settings and "use-conda" not in settings
    assert conda.pop("software-deployment-method") == "conda"
    assert conda == settings


@pytest.mark.parametrize("name", ["local-gpu", "slurm"])
def test_gpu_profiles_ask_for_a_gpu_once_in_one_place_for_every_gpu_rule(name):
    lines = [
        line.split("#")[0] for line in (PROFILES / name / "config.yaml").read_text().splitlines()
    ]
    # The request is written once, at the anchor, and merged into each GPU rule.
    assert sum("<<: &gpu_job" in line for line in lines) == 1
    assert sum("<<: *gpu_job" in line for line in lines) == len(gpu_capable_rules()) - 1
    settings = profile(name)
    assert set(settings["set-resources"]) == gpu_capable_rules()
    requests = {rule: _gpu_part(res) for rule, res in settings["set-resources"].items()}
    assert len({tuple(sorted(r.items())) for r in requests.values()}) == 1, requests
    assert "gpu" not in settings.get("default-resources", {})
    assert "gres" not in settings.get("default-resources", {})


def _gpu_part(resources: dict) -> dict:
    return {k: v for k, v in resources.items() if k in ("gpu", "gres", "slurm_partition")}


def test_cpu_profiles_ask_for_no_gpu():
    for name in ("local", "local-conda"):
        settings = profile(name)
        assert "set-resources" not in settings and "resources" not in settings, name


class _Job:
    """What the SLURM plugin reads of a job to build its GPU options."""

    def __init__(self, resources: dict):
        self.resources = _Resources(resources)


class _Resources(dict):
    __getattr__ = dict.__getitem__


def planned_resources(tmp_path, profile_name: str, config: str) -> dict[str, dict]:
    """Rule -> the resources of its jobs (all jobs of a rule alike) in a dry run."""
    workdir = copy_workflow(tmp_path / "work")
    settings = profile(profile_name)
    # The dry run must not need conda on this machine.
    settings.pop("software-deployment-method", None)
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(settings))
    result = run_snakemake_locally(
        workdir, "-n", "--profile", str(tmp_path / "profile"), "--configfile", f"config/{config}"
    )
    assert result.returncode == 0, result.stdout[-4000:]
    planned: dict[str, dict] = {}
    for rule, resources in re.findall(
        r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", result.stdout, re.M
    ):
        values = dict(re.findall(r"(\w+)=([^,]+)", resources))
        previous = planned.setdefault(rule, values)
        assert previous == values, f"{rule}: jobs of one rule ask for different resources"
    return planned


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS)
def test_every_study_plans_gpu_jobs_with_one_gpu_request_and_the_rest_with_none(tmp_path, config):
    planned = planned_resources(tmp_path, "slurm", config)
    assert gpu_capable_rules() <= set(planned), sorted(planned)
    for rule, resources in planned.items():
        options = set_gres_string(_Job(resources)).split()
        if rule in gpu_capable_rules():
            assert options == ["--gres=gpu:1"], (rule, resources)
        else:
            assert options == [], (rule, resources)


@pytest.mark.slow
def test_the_workstation_gpu_profile_counts_gpu_jobs(tmp_path):
    planned = planned_resources(tmp_path, "local-gpu", "mnist.yaml")
    for rule, resources in planned.items():
        expected = "1" if rule in gpu_capable_rules() else None
        assert resources.get("gpu") == expected, (rule, resources)


def _dry_run(tmp_path, profile_dir):
    workdir = copy_workflow(tmp_path / "work")
    return run_snakemake_locally(
        workdir,
        "-n",
        "--profile",
        str(profile_dir),
        "--configfile",
        str(workdir / "tests" / "configs" / TINY_CONFIG.name),
        timeout=300,
    )


@pytest.mark.slow
def test_local_profile_plans_the_study_without_conda(tmp_path):
    result = _dry_run(tmp_path, PROFILES / "local")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "train" in result.stdout and "score" in result.stdout
    # Nothing about conda: no environment to create, and no conda needed on the machine.
    assert "conda" not in result.stdout.lower(), result.stdout[-4000:]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("conda") is None, reason="conda is not installed")
def test_local_conda_profile_plans_the_study_with_conda(tmp_path):
    result = _dry_run(tmp_path, PROFILES / "local-conda")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "train" in result.stdout and "score" in result.stdout
