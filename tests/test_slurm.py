"""The SLURM profile against a real single-node SLURM cluster started by the tests.

`tests/slurm_cluster.py` brings up munged, slurmctld and slurmd (Debian 12's SLURM 22.05;
`bash .ci/install-slurm.sh` installs them) and Snakemake runs workflows through
``profiles/slurm``. The tests check what a cluster user relies on: every job really is a
SLURM job, ``train`` asks SLURM for a GPU, a job that SLURM kills is submitted again and
picks up where it stopped, and the real workflow run on ``tests/configs/tiny.yaml``
through SLURM gives the same numbers, bit for bit, as the same study run locally.

They run whenever SLURM is installed and the tests run as root, and are skipped with the
reason otherwise; ``-m "not slurm"`` deselects them. Two settings of the profile are
changed for the tests, and only these (``PROFILE_OVERRIDES`` in ``conftest.py``): no conda
(this machine has none; the test environment already holds every package) and a first
status check after 2 s instead of 20 s, because the test jobs last seconds.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import (
    SLURM_PROFILE,
    STUDY_TIMEOUT,
    TINY_CONFIG,
    assert_same_metrics,
    assert_same_samples,
    assert_same_training,
    copy_workflow,
    needs_slurm,
    run_dirs,
    run_snakemake_on_slurm,
    slurm_failure_report,
    slurm_job_details,
    slurm_snakemake_command,
    slurm_states,
    snakemake_env,
    submitted_job_ids,
)

#: Hard limit (seconds) on one Snakemake run of a stand-in workflow.
STAND_IN_TIMEOUT = 180


# --------------------------------------------------------------------------------------
# The profile itself (no cluster needed)


def test_profile_asks_for_what_the_cluster_tests_rely_on():
    settings = yaml.safe_load(SLURM_PROFILE.read_text())
    assert settings["executor"] == "slurm"
    assert settings["retries"] >= 1, "a job killed by SLURM must be submitted again"
    assert settings["rerun-incomplete"] is True
    # One GPU per GPU job, requested once: as GRES, with `gpu` pinned to 0 so that the plugin
    # adds no `--gpus` next to it.
    for rule in ("train", "sample"):
        gpu_request = {key: settings["set-resources"][rule][key] for key in ("gres", "gpu")}
        assert gpu_request == {"gres": "gpu:1", "gpu": 0}
    # Training hears of its time limit early enough to write a checkpoint.
    assert "--signal=USR1@" in settings["set-resources"]["train"]["slurm_extra"]
    assert "gpu" not in settings["default-resources"], "only GPU rules should get a GPU"
    assert settings["slurm-status-command"] == "squeue"
    assert settings["slurm-keep-successful-logs"] is True
    # squeue only sees finished jobs for MinJobAge (300 s by default) after they end; the
    # plugin needs MinJobAge >= 3 x the first delay.
    assert 3 * settings["slurm-init-seconds-before-status-checks"] <= 300
    # No account: the plugin cannot guess one without accounting and submits without -A.
    assert "slurm_account" not in settings["default-resources"]


# --------------------------------------------------------------------------------------
# The sbatch command the plugin builds from the profile (fake SLURM clients, no cluster)

#: Fake SLURM client commands: each logs its arguments; sbatch then fails, so the
#: plugin gives up on the job right after building its submission.
FAKE_CLIENTS = {
    "sbatch": "exit 1",
    "sinfo": 'printf "PARTITION\\ndebug*\\n"',
    "scontrol": 'echo "MinJobAge = 300 sec"',
    "sacct": "exit 1",
    "sacctmgr": "exit 1",
    "sshare": "exit 1",
    "squeue": "exit 1",
}

GPU_AND_CPU_JOBS = """
rule all:
    input:
        "data.txt",
        "model.txt",


rule prepare:
    output:
        "data.txt",
    shell:
        "touch {output}"


rule train:
    # A GPU count from the study's config (as on a workstation) must not add a second
    # GPU request to the profile's.
    output:
        "model.txt",
    resources:
        gpu=1,
    shell:
        "touch {output}"
"""


def slurm_command_with_profile(workdir: Path, *args: str, timeout: int, edit_profile=None):
    """`slurm_snakemake_command`, with ``edit_profile(settings)`` applied to its profile."""
    command = slurm_snakemake_command(workdir, *args, timeout=timeout)
    if edit_profile is not None:
        profile = Path(command[command.index("--profile") + 1]) / "config.yaml"
        settings = yaml.safe_load(profile.read_text())
        edit_profile(settings)
        profile.write_text(yaml.safe_dump(settings, sort_keys=False))
    return command


def sbatch_calls(tmp_path: Path, snakefile: str, edit_profile=None) -> dict[str, str]:
    """Rule name -> the sbatch command line the plugin ran for its job, with the profile
    (``edit_profile(settings)`` may change it first)."""
    bin_dir, workdir = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    workdir.mkdir()
    log = tmp_path / "clients.log"
    for name, action in FAKE_CLIENTS.items():
        fake = bin_dir / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{action}\n')
        fake.chmod(0o755)
    (workdir / "Snakefile").write_text(snakefile)
    command = slurm_command_with_profile(
        workdir, "--retries", "0", timeout=STAND_IN_TIMEOUT, edit_profile=edit_profile
    )
    env = snakemake_env()
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    calls = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        match = re.search(r"--comment rule_(\w+)", line)
        if line.startswith("sbatch ") and match:
            calls[match.group(1)] = line
    return calls


def gpu_requests(sbatch_call: str) -> list[str]:
    return re.findall(r"--(?:gres=gpu\S*|gpus[=\s]\S+|gpus-per-\w+[=\s]\S+)", sbatch_call)


def test_each_gpu_job_asks_for_its_gpu_exactly_once(tmp_path):
    calls = sbatch_calls(tmp_path, GPU_AND_CPU_JOBS)
    assert set(calls) == {"prepare", "train"}, calls
    assert gpu_requests(calls["train"]) == ["--gres=gpu:1"], calls["train"]
    assert gpu_requests(calls["prepare"]) == [], calls["prepare"]
    # The early warning reaches sbatch as one option, unquoted.
    assert " --signal=USR1@120 " in calls["train"], calls["train"]


def test_a_gpu_model_from_the_docs_still_gives_one_gpu_request(tmp_path):
    """docs/cluster.md: a GPU model goes into the profile's gres string."""

    def ask_for_a100(settings):
        settings["set-resources"]["train"]["gres"] = "gpu:a100:1"

    calls = sbatch_calls(tmp_path, GPU_AND_CPU_JOBS, ask_for_a100)
    assert gpu_requests(calls["train"]) == ["--gres=gpu:a100:1"], calls["train"]


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
def test_jobs_run_as_slurm_jobs_through_the_profile(slurm_cluster, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(THREE_JOBS)

    result = run_snakemake_on_slurm(slurm_cluster, workdir, timeout=STAND_IN_TIMEOUT)
    assert result.returncode == 0, slurm_failure_report(result, slurm_cluster)

    # Each job recorded the SLURM job id it ran under; the ids are the ones Snakemake
    # submitted, distinct, and SLURM ran them to completion.
    ran_as = {
        path: (workdir / path).read_text().split()[0]
        for path in ("data/a.txt", "data/b.txt", "model.txt")
    }
    submitted = set(submitted_job_ids(result.stdout))
    assert set(ran_as.values()) == submitted and len(submitted) == 3, result.stdout[-3000:]
    known = slurm_states(slurm_cluster)
    assert all(known.get(job_id) == "COMPLETED" for job_id in submitted), known

    # The train job asked SLURM for one GPU (the profile's set-resources), the others none.
    train_job = ran_as["model.txt"]
    assert gpus_asked_for(slurm_job_details(slurm_cluster, train_job)) == 1
    for path in ("data/a.txt", "data/b.txt"):
        assert gpus_asked_for(slurm_job_details(slurm_cluster, ran_as[path])) == 0

    # Successful jobs keep their SLURM logs (--slurm-keep-successful-logs).
    logs = {path.stem for path in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert submitted <= logs


def gpus_asked_for(job_details: dict[str, str]) -> int:
    """GPUs a job asked SLURM for, by GRES per node (``--gres``) and per job (``--gpus``)."""
    total = 0
    for key in ("TresPerNode", "TresPerJob"):
        for count in re.findall(r"gpu(?::[\w.]+)?:(\d+)", job_details.get(key, "")):
            total += int(count)
    return total


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
def test_a_job_killed_by_slurm_is_retried_and_resumes(slurm_cluster, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(RESUMABLE_TRAIN)

    output_path = tmp_path / "snakemake.out"
    with open(output_path, "w") as output:
        process = subprocess.Popen(
            slurm_snakemake_command(workdir, timeout=STAND_IN_TIMEOUT),
            env=snakemake_env(slurm_cluster.env()),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            # The first attempt wrote its checkpoint and now "trains" for 10 minutes:
            # cancel it from outside, as a preemption or an administrator would.
            first_job = wait_for_file(workdir / "checkpoints" / "last.txt", process, 90)
            subprocess.run(["scancel", first_job], env=slurm_cluster.env(), check=True)
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
    known = slurm_states(slurm_cluster)
    assert known[first_job] == "CANCELLED" and known[second_job] == "COMPLETED", known
    # runtime = 2 min x attempt, and SLURM enforces it as the job's time limit.
    assert runtime == "4"
    assert slurm_job_details(slurm_cluster, first_job)["TimeLimit"] == "00:02:00"
    assert slurm_job_details(slurm_cluster, second_job)["TimeLimit"] == "00:04:00"
    assert submitted_job_ids(log), "the plugin did not report its submissions"


# --------------------------------------------------------------------------------------
# The real workflow

#: Rules that the workflow marks local: they must run on the login node, never as jobs.
LOCAL_RULES = ("prepare_dataset", "inception_weights", "collect_metrics", "report")


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_real_workflow_through_slurm_matches_the_local_run(slurm_cluster, tiny_study, tmp_path):
    workdir = copy_workflow(tmp_path / "repo")
    result = run_snakemake_on_slurm(
        slurm_cluster,
        workdir,
        "--configfile",
        str(workdir / "tests" / "configs" / TINY_CONFIG.name),
        timeout=STUDY_TIMEOUT,
    )
    assert result.returncode == 0, slurm_failure_report(result, slurm_cluster)
    assert (workdir / "results" / "report.html").exists()

    # Every submitted job ran to completion as a SLURM job.
    submitted = set(submitted_job_ids(result.stdout))
    known = slurm_states(slurm_cluster)
    assert submitted and all(known.get(job_id) == "COMPLETED" for job_id in submitted), known

    # Each run was trained, sampled and scored in a SLURM job of its own: one kept SLURM
    # log per run and rule, named by the job id Snakemake submitted. Training asked SLURM
    # for a GPU; the local rules never became SLURM jobs.
    runs = run_dirs(tiny_study.results)
    assert sorted(run_dirs(workdir / "results")) == sorted(runs) and len(runs) == 4
    slurm_logs = workdir / ".snakemake" / "slurm_logs"
    for rule in ("train", "sample", "score"):
        job_ids = [log.stem for log in (slurm_logs / f"rule_{rule}").rglob("*.log")]
        assert len(job_ids) == len(set(job_ids)) == len(runs), (rule, job_ids)
        assert set(job_ids) <= submitted, (rule, job_ids, submitted)
        if rule == "train":
            for job_id in job_ids:
                details = slurm_job_details(slurm_cluster, job_id)
                assert gpus_asked_for(details) == 1, details
    for rule in LOCAL_RULES:
        assert not (slurm_logs / f"rule_{rule}").exists(), f"{rule} ran as a SLURM job"

    # The same numbers as the local run of the same study, bit for bit: where a job runs
    # must not change what it computes.
    for name, local_run in runs.items():
        slurm_run = workdir / "results" / name
        assert_same_training(local_run, slurm_run)
        assert_same_samples(local_run, slurm_run)
        assert_same_metrics(local_run, slurm_run)


EARLY_SIGNAL_TRAIN = """
rule train:
    # Like real training: on SIGUSR1 it writes a checkpoint (taking its time) and exits
    # with an error; started again, it resumes from that checkpoint.
    output:
        "model.txt",
    resources:
        runtime=lambda wildcards, attempt: 2 * attempt,
    shell:
        '''
        python3 -c '
import os, signal, sys, time
if os.path.exists("checkpoint.txt"):
    open("model.txt", "w").write(open("checkpoint.txt").read() + " " + os.environ["SLURM_JOB_ID"])
    sys.exit(0)
def write_checkpoint(signum, frame):
    time.sleep(5)
    open("checkpoint.txt", "w").write(os.environ["SLURM_JOB_ID"] + " " + str(time.time()))
    sys.exit(3)
signal.signal(signal.SIGUSR1, write_checkpoint)
open("started.txt", "w").write(str(time.time()))
time.sleep(600)
'
        '''
"""


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_training_hears_of_its_time_limit_early_and_its_retry_resumes(slurm_cluster, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(EARLY_SIGNAL_TRAIN)

    def signal_a_minute_early(settings):
        # The profile's 2 minutes, scaled to the 2-minute limit of this job.
        extra = settings["set-resources"]["train"]["slurm_extra"]
        assert "--signal=USR1@120" in extra
        settings["set-resources"]["train"]["slurm_extra"] = extra.replace("@120", "@60")

    result = subprocess.run(
        slurm_command_with_profile(
            workdir, timeout=STAND_IN_TIMEOUT, edit_profile=signal_a_minute_early
        ),
        env=snakemake_env(slurm_cluster.env()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    assert result.returncode == 0, slurm_failure_report(result, slurm_cluster)

    first_job, written_at, second_job = (workdir / "model.txt").read_text().split()
    started_at = float((workdir / "started.txt").read_text())
    # The signal reached the training process (through Snakemake's job step) before the
    # limit, and it had time to write its checkpoint; the job then failed, not timed out.
    assert float(written_at) - started_at < 2 * 60, "the checkpoint came after the limit"
    states = slurm_states(slurm_cluster)
    assert states[first_job] == "FAILED" and states[second_job] == "COMPLETED", states
    assert submitted_job_ids(result.stdout) == [first_job, second_job]


# --------------------------------------------------------------------------------------
# A training job that runs into its time limit

#: The grid cell whose training outlasts its first time limit.
LIMIT_CELL = "digits/runs/linear-T50-seed0"
LIMIT_TARGET = f"results/{LIMIT_CELL}/model.pt"
LIMIT_TRAIN_LOG = "logs/digits/train/linear-T50-seed0.log"

#: Training steps that take about 2 minutes here (16-30 steps/s of the tiny model, 1 thread,
#: on a shared 2-core machine), against a first time limit of 1 minute (SLURM's smallest):
#: the first attempt runs out of time; later attempts get 2, then 3 minutes.
LIMIT_STEPS = 3000

#: Hard limit (seconds) on the Snakemake run through SLURM (up to 1 + 2 + 3 minutes of jobs).
LIMIT_TIMEOUT = 600


def write_time_limit_study(workdir: Path) -> Path:
    """A copy of the workflow whose training needs about 2 minutes against a 1-minute limit."""
    copy_workflow(workdir)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["training"].update(
        steps=LIMIT_STEPS, checkpoint_every=100, log_every=100, snapshot_every=LIMIT_STEPS
    )
    config["resources"]["train"]["runtime"] = 1
    path = workdir / "tests" / "configs" / "time-limit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_training_past_its_time_limit_is_retried_with_more_time_and_resumes(
    slurm_cluster, tmp_path
):
    reference_dir, workdir = tmp_path / "uninterrupted", tmp_path / "repo"
    reference_config = write_time_limit_study(reference_dir)
    config = write_time_limit_study(workdir)
    # The uninterrupted run goes on locally at the same time, to save wall-clock time.
    reference = subprocess.Popen(
        [sys.executable, "-m", "snakemake", LIMIT_TARGET, "--cores", "1"]
        + ["--configfile", str(reference_config)],
        cwd=reference_dir,
        env=snakemake_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def without_early_signal(settings):
        # Under a 1-minute limit the profile's SIGUSR1 "2 minutes before" would come at once;
        # this test is about the limit itself (SIGTERM). The early signal has its own test.
        del settings["set-resources"]["train"]["slurm_extra"]

    try:
        result = subprocess.run(
            slurm_command_with_profile(
                workdir,
                LIMIT_TARGET,
                "--configfile",
                str(config),
                timeout=LIMIT_TIMEOUT,
                edit_profile=without_early_signal,
            ),
            env=snakemake_env(slurm_cluster.env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        reference_output, _ = reference.communicate(timeout=LIMIT_TIMEOUT)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    assert reference.returncode == 0, reference_output[-4000:]
    assert result.returncode == 0, slurm_failure_report(result, slurm_cluster)

    # SLURM ended the first attempt at its 1-minute limit; Snakemake submitted it again with
    # the runtime of the next attempt, and the last attempt completed.
    jobs = submitted_job_ids(result.stdout)
    states = slurm_states(slurm_cluster)
    assert len(jobs) >= 2, (jobs, result.stdout[-4000:])
    assert [states[job] for job in jobs] == ["TIMEOUT"] * (len(jobs) - 1) + ["COMPLETED"], states
    for attempt, job in enumerate(jobs, start=1):
        assert slurm_job_details(slurm_cluster, job)["TimeLimit"] == f"00:{attempt:02d}:00"

    # The last attempt resumed from a checkpoint and ended with the uninterrupted weights.
    # (An attempt cut off after its last step, while writing the outputs, leaves a
    # checkpoint at the final step: the retry then only writes them.)
    run_dir = workdir / "results" / LIMIT_CELL
    record = json.loads((run_dir / "run.json").read_text())
    resumed = record["resumed_from_step"]
    assert record["steps_trained"] == LIMIT_STEPS
    assert resumed is not None and 0 < resumed <= LIMIT_STEPS, record
    log = (workdir / LIMIT_TRAIN_LOG).read_text()
    assert f"resuming from checkpoint at step {resumed} of {LIMIT_STEPS}" in log, log[-3000:]
    assert_same_training(reference_dir / "results" / LIMIT_CELL, run_dir)
