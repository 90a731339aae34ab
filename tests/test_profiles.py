"""The local profiles plan the study: ``profiles/local`` from the README's virtualenv without
conda, ``profiles/local-conda`` with one conda environment per rule."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import REPO, TINY_CONFIG, copy_workflow, run_snakemake_locally

LOCAL = REPO / "profiles" / "local"
LOCAL_CONDA = REPO / "profiles" / "local-conda"


def _dry_run(tmp_path, profile):
    workdir = copy_workflow(tmp_path / "work")
    return run_snakemake_locally(
        workdir,
        "-n",
        "--profile",
        str(profile),
        "--configfile",
        str(workdir / "tests" / "configs" / TINY_CONFIG.name),
        timeout=300,
    )


def test_profiles_differ_only_in_conda():
    plain = yaml.safe_load((LOCAL / "config.yaml").read_text())
    conda = yaml.safe_load((LOCAL_CONDA / "config.yaml").read_text())
    assert "software-deployment-method" not in plain and "use-conda" not in plain
    assert conda.pop("software-deployment-method") == "conda"
    assert conda == plain
    assert plain["resources"]["gpu"] >= 1, "GPU rules must be able to start"


@pytest.mark.slow
def test_local_profile_plans_the_study_without_conda(tmp_path):
    result = _dry_run(tmp_path, LOCAL)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "train" in result.stdout and "score" in result.stdout
    # Nothing about conda: no environment to create, and no conda needed on the machine.
    assert "conda" not in result.stdout.lower(), result.stdout[-4000:]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("conda") is None, reason="conda is not installed")
def test_local_conda_profile_plans_the_study_with_conda(tmp_path):
    result = _dry_run(tmp_path, LOCAL_CONDA)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "train" in result.stdout and "score" in result.stdout
