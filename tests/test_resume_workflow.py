"""Training stopped mid-run by force is retried by Snakemake and ends as if never stopped.

The workflow's ``train`` job writes rolling checkpoints that are not outputs of the rule,
so they survive a failed attempt, and the retry resumes from the newest one. Here a real
``train`` job of the tiny study (one cell, with more steps so that there is time to stop
it) is killed once it has a checkpoint beyond step 10: locally with SIGKILL to the
training process, and on the local SLURM cluster with ``scancel``. Snakemake's retry must
then finish it, resuming from a checkpoint, with EMA weights, loss log and snapshots
identical, bit for bit, to those of the same job run without interruption.

The other way round, a rerun that an edit of the library causes must compute afresh:
the finished run's checkpoints are still there, but were written by other code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import (
    TINY_CONFIG,
    assert_same_training,
    copy_workflow,
    load_model_file,
    needs_slurm,
    profile_runtime,
    run_snakemake_locally,
    script_process,
    slurm_job_details,
    slurm_snakemake_command,
    slurm_states,
    slurm_time,
    snakemake_env,
    snakemake_in_background,
    submitted_jobs_of_rule,
    wait_for_checkpoint,
    write_config,
)

#: The grid cell whose training is interrupted.
CELL = "digits/runs/linear-T50-seed0"
TARGET = f"results/{CELL}/model.pt"
TRAIN_LOG = "logs/digits/train/linear-T50-seed0.log"

#: The tiny study's training with this many steps (about 10 s here) instead of 30, so that
#: the job is still running well after its checkpoint at step 20. Everything else,
#: checkpoints every 10 steps included, is as in tests/configs/tiny.yaml.
STEPS = 300

#: The first attempt is stopped once it has written a checkpoint beyond this step.
STOP_BEYOND_STEP = 10

#: Hard limit (seconds) on one Snakemake run here.
TIMEOUT = 300


def prepare(workdir: Path) -> Path:
    """A copy of the workflow in ``workdir`` and the longer training config; returns the config."""
    copy_workflow(workdir)
    return write_config(workdir / "tests" / "configs" / "resume.yaml", steps=STEPS)


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The run directory of the cell trained once, start to end, without interruption."""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "repo"
    config = prepare(workdir)
    result = run_snakemake_locally(
        workdir, TARGET, "--cores", "1", "--configfile", str(config), timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stdout[-6000:]
    run_dir = workdir / "results" / CELL
    record = read_record(run_dir)
    assert record["steps_trained"] == STEPS and record["resumed_from_step"] is None
    return run_dir


def assert_resumed_and_identical(run_dir: Path, workdir: Path, stopped_at: int, reference: Path):
    """The retry resumed from a checkpoint at or beyond ``stopped_at`` and matches ``reference``."""
    record = read_record(run_dir)
    assert record["steps_trained"] == STEPS
    resumed = record["resumed_from_step"]
    assert resumed is not None and stopped_at <= resumed < STEPS, record
    # The rule's log is the retry's (Snakemake removes a failed attempt's log), and says so.
    log = (workdir / TRAIN_LOG).read_text()
    assert f"resuming from checkpoint at step {resumed} of {STEPS}" in log, log[-3000:]
    assert_same_training(reference, run_dir)


@pytest.mark.slow
def test_training_killed_locally_is_retried_and_ends_as_if_never_stopped(uninterrupted, tmp_path):
    workdir = tmp_path / "repo"
    config = prepare(workdir)
    run_dir = workdir / "results" / CELL
    command = [sys.executable, "-m", "snakemake", TARGET, "--cores", "1", "--retries", "1"]
    command += ["--configfile", str(config)]
    output = tmp_path / "snakemake.out"
    with snakemake_in_background(
        ["timeout", "-k", "10", str(TIMEOUT), *command],
        cwd=workdir,
        env=snakemake_env(),
        output=output,
    ) as process:
        stopped_at = wait_for_checkpoint(
            run_dir / "checkpoints", process, STOP_BEYOND_STEP, timeout=120
        )
        training = script_process(process.pid, ".train.py")
        assert training is not None, "the training script is not running"
        assert not (run_dir / "model.pt").exists(), "training finished before it was killed"
        os.kill(training, signal.SIGKILL)
        returncode = process.wait(TIMEOUT + 20)
    snakemake_log = output.read_text()
    assert returncode == 0, snakemake_log[-6000:]
    # Snakemake saw the first attempt fail, and the retry finished the job.
    assert "Error in rule train" in snakemake_log, snakemake_log[-6000:]
    assert "Trying to restart job" in snakemake_log, snakemake_log[-6000:]
    assert_resumed_and_identical(run_dir, workdir, stopped_at, uninterrupted)


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_training_cancelled_on_slurm_is_resubmitted_and_ends_as_if_never_stopped(
    slurm_cluster, uninterrupted, tmp_path
):
    workdir = tmp_path / "repo"
    config = prepare(workdir)
    run_dir = workdir / "results" / CELL
    output = tmp_path / "snakemake.out"
    with snakemake_in_background(
        slurm_snakemake_command(workdir, TARGET, "--configfile", str(config), timeout=TIMEOUT),
        env=snakemake_env(slurm_cluster.env()),
        output=output,
    ) as process:
        stopped_at = wait_for_checkpoint(
            run_dir / "checkpoints", process, STOP_BEYOND_STEP, timeout=180
        )
        # The train job (the data rule is local; the precision was decided in a job before).
        (first_job,) = submitted_jobs_of_rule(slurm_cluster, output.read_text(), "train")
        assert slurm_states(slurm_cluster)[first_job] == "RUNNING"
        # Cancel it from outside, as a preemption or an administrator would.
        subprocess.run(["scancel", first_job], env=slurm_cluster.env(), check=True)
        returncode = process.wait(TIMEOUT + 20)
    snakemake_log = output.read_text()
    assert returncode == 0, snakemake_log[-6000:]

    jobs = submitted_jobs_of_rule(slurm_cluster, snakemake_log, "train")
    assert len(jobs) == 2 and jobs[0] == first_job, jobs
    second_job = jobs[1]
    states = slurm_states(slurm_cluster)
    assert states[first_job] == "CANCELLED" and states[second_job] == "COMPLETED", states
    # The retry asked for more time (the profile's runtime grows with the attempt).
    for attempt, job in enumerate((first_job, second_job), start=1):
        limit = slurm_time(profile_runtime("train", attempt))
        assert slurm_job_details(slurm_cluster, job)["TimeLimit"] == limit
    assert_resumed_and_identical(run_dir, workdir, stopped_at, uninterrupted)


@pytest.mark.slow
def test_editing_the_library_retrains_afresh_instead_of_resuming_old_weights(tmp_path):
    """The rerun that an edited U-Net causes must not resume (or re-save) the old weights.

    The finished run's checkpoints survive the rerun (they are not outputs); without the
    code in their identity the rerun would find its final step done and write model.pt
    from the old weights.
    """
    workdir = tmp_path / "repo"
    copy_workflow(workdir)
    run_dir = workdir / "results" / CELL
    args = (TARGET, "--cores", "1", "--configfile", str(TINY_CONFIG))
    first = run_snakemake_locally(workdir, *args, timeout=TIMEOUT)
    assert first.returncode == 0, first.stdout[-6000:]
    before = read_record(run_dir)
    old_weights = load_model_file(run_dir / "model.pt")["ema_state_dict"]

    # The time embedding's frequency scale: a change to what the weights compute.
    unet = workdir / "src" / "ddpm" / "unet.py"
    source = unet.read_text()
    assert source.count("max_period: float = 10000.0") == 1
    unet.write_text(source.replace("max_period: float = 10000.0", "max_period: float = 5000.0"))
    second = run_snakemake_locally(workdir, *args, timeout=TIMEOUT)
    assert second.returncode == 0, second.stdout[-6000:]
    assert "rule train:" in second.stdout, "the edit did not reschedule the training"

    after = read_record(run_dir)
    assert after["resumed_from_step"] is None, after
    assert after["code_fingerprint"] != before["code_fingerprint"]
    log = (workdir / TRAIN_LOG).read_text()
    assert "written by different code" in log, log[-3000:]
    new_weights = load_model_file(run_dir / "model.pt")["ema_state_dict"]
    assert any(not torch.equal(new_weights[k], old_weights[k]) for k in old_weights)
