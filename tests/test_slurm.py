"""The SLURM profile against a real single-node SLURM cluster started by the tests.

`tests/slurm_cluster.py` brings up munged, slurmctld and slurmd (Debian 12's SLURM 22.05;
`bash .ci/install-slurm.sh` installs them) and Snakemake runs workflows through
``profiles/slurm``. The tests check what a cluster user relies on: every job really is a
SLURM job, ``train`` asks SLURM for a GPU, a job that SLURM kills is submitted again and
picks up where it stopped, and (with ``DDPM_TEST_SLURM_WORKFLOW=1``, since it takes
minutes) the real workflow runs end to end on ``tests/configs/tiny.yaml``.

Two settings of the profile are changed for the tests, and only these (`PROFILE_OVERRIDES`):
no conda (this machine has none; the test environment already holds every package) and a
first status check after 2 s instead of 20 s, because the test jobs last seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster, missing_requirements

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"

#: Profile keys the tests replace (None removes the key), with the reason.
PROFILE_OVERRIDES = {
    # No conda on the test machine; the jobs use the Python that runs the tests.
    "software-deployment-method": None,
    "use-conda": None,
    # Test jobs take seconds: poll squeue early. MinJobAge=300 >= 3 x 2 keeps squeue valid.
    "slurm-init-seconds-before-status-checks": 2,
}

#: Hard limits (seconds) on one Snakemake run, enforced with `timeout -k` because
#: Snakemake waits for running jobs to finish when it gets SIGTERM.
STAND_IN_TIMEOUT = 180
REAL_WORKFLOW_TIMEOUT = 900

#: The real-workflow test runs only when this environment variable is "1".
REAL_WORKFLOW_SWITCH = "DDPM_TEST_SLURM_WORKFLOW"

slurm_reason = missing_requirements()
needs_slurm = pytest.mark.skipif(slurm_reason is not None, reason=slurm_reason or "")


# --------------------------------------------------------------------------------------
# Helpers


def write_test_profile(directory: Path) -> Path:
    """Copy profiles/slurm into ``directory`` with `PROFILE_OVERRIDES` applied."""
    settings = yaml.safe_load(PROFILE.read_text())
    for key, value in PROFILE_OVERRIDES.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return directory


def snakemake_command(workdir: Path, *args: str, timeout: int) -> list[str]:
    """Snakemake through the test profile, bounded by ``timeout`` seconds."""
    profile = write_test_profile(workdir.parent / f"{workdir.name}-profile")
    return [
        "timeout",
        "-k",
        "10",
        str(timeout),
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        str(profile),
        "--snakefile",
        str(workdir / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]


def run_snakemake(cluster: SlurmCluster, workdir: Path, *args: str, timeout: int):
    """Run Snakemake to the end; its combined output is in the result's ``stdout``."""
    return subprocess.run(
        snakemake_command(workdir, *args, timeout=timeout),
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )


def submitted_job_ids(snakemake_output: str) -> dict[str, str]:
    """SLURM job id by Snakemake job id, from the plugin's 'has been submitted' lines."""
    return dict(
        re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", snakemake_output)
    )


def slurm_job_details(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dictionary (the controller keeps finished jobs 300 s)."""
    result = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", job_id],
        env=cluster.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(re.findall(r"(\w+)=(\S*)", result.stdout))


def states(cluster: SlurmCluster) -> dict[str, str]:
    return {job_id: state for job_id, _, state in cluster.squeue()}


def failure_report(result: subprocess.CompletedProcess, cluster: SlurmCluster) -> str:
    return f"snakemake exited {result.returncode}\n{result.stdout[-6000:]}\n{cluster.logs(15)}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster for the whole module; stopped (and its processes ended) afterwards."""
    if slurm_reason is not None:
        pytest.skip(slurm_reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


# --------------------------------------------------------------------------------------
# The profile itself (no cluster needed)


def test_profile_asks_for_what_the_cluster_tests_rely_on():
    settings = yaml.safe_load(PROFILE.read_text())
    assert settings["executor"] == "slurm"
    assert settings["retries"] >= 1, "a job killed by SLURM must be submitted again"
    assert settings["rerun-incomplete"] is True
    assert settings["set-resources"]["train"]["gpu"] == 1
    assert "gpu" not in settings["default-resources"], "only GPU rules should get a GPU"
    assert settings["slurm-status-command"] == "squeue"
    assert settings["slurm-keep-successful-logs"] is True
    # squeue only sees finished jobs for MinJobAge (300 s by default) after they end; the
    # plugin needs MinJobAge >= 3 x the first delay.
    assert 3 * settings["slurm-init-seconds-before-status-checks"] <= 300
    # No account: the plugin cannot guess one without accounting and submits without -A.
    assert "slurm_account" not in settings["default-resources"]


# --------------------------------------------------------------------------------------
# Stand-in workflows: fast, and independent of the real one


THREE_JOBS = """
rule all:
    input:
        "model.txt",


rule prepare:
    output:
        "data/{part}.txt",
    shell:
        "echo $SLURM_JOB_ID > {output}"


rule train:
    # Named like the real rule, so the profile gives it a GPU.
    input:
        expand("data/{part}.txt", part=["a", "b"]),
    output:
        "model.txt",
    shell:
        "echo $SLURM_JOB_ID > {output}"
"""


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_jobs_run_as_slurm_jobs_through_the_profile(cluster, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(THREE_JOBS)

    result = run_snakemake(cluster, workdir, timeout=STAND_IN_TIMEOUT)
    assert result.returncode == 0, failure_report(result, cluster)

    # Each job recorded the SLURM job id it ran under; the ids are the ones Snakemake
    # submitted, distinct, and SLURM ran them to completion.
    ran_as = {
        path: (workdir / path).read_text().split()[0]
        for path in ("data/a.txt", "data/b.txt", "model.txt")
    }
    submitted = set(submitted_job_ids(result.stdout).values())
    assert set(ran_as.values()) == submitted and len(submitted) == 3, result.stdout[-3000:]
    known = states(cluster)
    assert all(known.get(job_id) == "COMPLETED" for job_id in submitted), known

    # The train job asked SLURM for one GPU (the profile's set-resources), the others none.
    train_job = ran_as["model.txt"]
    assert "gpu:1" in slurm_job_details(cluster, train_job).get("TresPerJob", "")
    for path in ("data/a.txt", "data/b.txt"):
        assert "gpu" not in slurm_job_details(cluster, ran_as[path]).get("TresPerJob", "")

    # Successful jobs keep their SLURM logs (--slurm-keep-successful-logs).
    logs = {path.stem for path in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert submitted <= logs


RESUMABLE_TRAIN = """
rule all:
    input:
        "model.txt",


rule train:
    # Like real training: a rolling checkpoint that is not an output, so Snakemake keeps
    # it when the job fails, and a runtime that grows with every attempt.
    output:
        "model.txt",
    params:
        checkpoint="checkpoints/last.txt",
    resources:
        runtime=lambda wildcards, attempt: 2 * attempt,
    shell:
        '''
        if [ -e {params.checkpoint} ]; then
            echo "$(cat {params.checkpoint}) $SLURM_JOB_ID {resources.runtime}" > {output}
        else
            mkdir -p checkpoints
            echo $SLURM_JOB_ID > {params.checkpoint}.part
            mv {params.checkpoint}.part {params.checkpoint}
            sleep 600
        fi
        '''
"""


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float) -> str:
    """Contents of ``path`` once it exists; fails if Snakemake exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"snakemake exited ({process.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.5)
    return path.read_text().strip()


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_a_job_killed_by_slurm_is_retried_and_resumes(cluster, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(RESUMABLE_TRAIN)

    output_path = tmp_path / "snakemake.out"
    with open(output_path, "w") as output:
        process = subprocess.Popen(
            snakemake_command(workdir, timeout=STAND_IN_TIMEOUT),
            env=cluster.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            # The first attempt wrote its checkpoint and now "trains" for 10 minutes:
            # cancel it from outside, as a preemption or an administrator would.
            first_job = wait_for_file(workdir / "checkpoints" / "last.txt", process, 90)
            subprocess.run(["scancel", first_job], env=cluster.env(), check=True)
            returncode = process.wait(timeout=STAND_IN_TIMEOUT + 20)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(30)
    log = output_path.read_text()
    assert returncode == 0, f"snakemake exited {returncode}\n{log[-6000:]}"

    resumed_from, second_job, runtime = (workdir / "model.txt").read_text().split()
    assert resumed_from == first_job, "the retry must start from the first attempt's checkpoint"
    assert second_job != first_job
    known = states(cluster)
    assert known[first_job] == "CANCELLED" and known[second_job] == "COMPLETED", known
    # runtime = 2 min x attempt, and SLURM enforces it as the job's time limit.
    assert runtime == "4"
    assert slurm_job_details(cluster, first_job)["TimeLimit"] == "00:02:00"
    assert slurm_job_details(cluster, second_job)["TimeLimit"] == "00:04:00"
    assert submitted_job_ids(log), "the plugin did not report its submissions"


# --------------------------------------------------------------------------------------
# The real workflow


def copy_workflow(destination: Path) -> Path:
    """A private copy of the workflow, so results, logs and .snakemake stay out of the
    checkout; with config/ beside the Snakefile it reads its configuration exactly as it
    does from the repository root."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    for name in ("workflow", "config", "src"):
        shutil.copytree(REPO / name, destination / name, ignore=ignore)
    shutil.copy2(REPO / "Snakefile", destination / "Snakefile")
    (destination / "tests" / "configs").mkdir(parents=True)
    shutil.copy2(TINY_CONFIG, destination / "tests" / "configs" / TINY_CONFIG.name)
    return destination


def real_workflow_reason() -> str | None:
    if os.environ.get(REAL_WORKFLOW_SWITCH) != "1":
        return (
            f"set {REAL_WORKFLOW_SWITCH}=1 to run the real workflow (tests/configs/tiny.yaml) "
            "through SLURM; it takes minutes"
        )
    if not (REPO / "Snakefile").exists():
        return "the workflow's Snakefile is not written yet"
    if not TINY_CONFIG.exists():
        return f"{TINY_CONFIG.relative_to(REPO)} is not written yet"
    return None


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_real_workflow_runs_through_slurm(cluster, tmp_path):
    reason = real_workflow_reason()
    if reason:
        pytest.skip(reason)
    workdir = copy_workflow(tmp_path / "repo")

    result = run_snakemake(
        cluster,
        workdir,
        "--configfile",
        str(workdir / "tests" / "configs" / "tiny.yaml"),
        timeout=REAL_WORKFLOW_TIMEOUT,
    )
    assert result.returncode == 0, failure_report(result, cluster)

    submitted = set(submitted_job_ids(result.stdout).values())
    known = states(cluster)
    assert submitted and all(known.get(job_id) == "COMPLETED" for job_id in submitted)

    # Every training run went through SLURM with a GPU request; local rules (downloads)
    # never became SLURM jobs.
    slurm_logs = workdir / ".snakemake" / "slurm_logs"
    train_logs = list((slurm_logs / "rule_train").rglob("*.log"))
    models = list((workdir / "results").glob("*/runs/*/model.pt"))
    assert models and len(train_logs) == len(models)
    for log in train_logs:
        assert "gpu:1" in slurm_job_details(cluster, log.stem).get("TresPerJob", "")
    assert not (slurm_logs / "rule_prepare_dataset").exists()
    assert (workdir / "results" / "report.html").exists()
