"""Training and sampling jobs on SLURM survive their time limit. Training, warned by SIGUSR1
ahead of it (the profile's ``slurm_extra``) or stopped by SLURM's SIGTERM at it, checkpoints,
fails, and Snakemake submits it again with more time; the retry resumes from the checkpoint
and ends with the weights of a run never interrupted. Sampling keeps every finished batch, so
its retry draws only the rest and ends with the samples of a job never interrupted.

Like ``tests/test_slurm.py``, these run on the single-node SLURM the tests start, as root
with SLURM installed, and are skipped otherwise. They take minutes: run them alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import (
    TINY_CONFIG,
    assert_same_samples,
    assert_same_training,
    copy_workflow,
    needs_slurm,
    slurm_failure_report,
    slurm_job_details,
    slurm_states,
    snakemake_env,
    submitted_job_ids,
    submitted_jobs_of_rule,
)
from test_slurm import STAND_IN_TIMEOUT, slurm_command_with_profile

EARLY_SIGNAL_TRAIN = """
rule train:
    # Like real training: on SIGUSR1 it writes a checkpoint (taking its time) and exits
    # with an error; started again, it resumes from that checkpoint.
    output:
        "model.txt",
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
        # A 2-minute limit per attempt, and the profile's 2 minutes of warning scaled to it.
        train = settings["set-resources"]["train"]
        train["runtime"] = "2 * attempt"
        assert "--signal=USR1@120" in train["slurm_extra"]
        train["slurm_extra"] = train["slurm_extra"].replace("@120", "@60")

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


def write_time_limit_study(workdir: Path, **sections) -> Path:
    """A copy of the workflow whose training needs about 2 minutes (or whose config sections
    are updated with ``sections``)."""
    copy_workflow(workdir)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    if not sections:
        sections = {
            "training": dict(
                steps=LIMIT_STEPS, checkpoint_every=100, log_every=100, snapshot_every=LIMIT_STEPS
            )
        }
    for name, values in sections.items():
        config[name].update(values)
    path = workdir / "tests" / "configs" / "time-limit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def one_minute_per_attempt(rule: str, retries: int | None = None):
    """A profile edit: ``rule``'s jobs get 1 minute (SLURM's smallest limit) per attempt, no
    early warning (under a 1-minute limit the profile's "2 minutes before" would come at once),
    and ``retries`` retries if given."""

    def edit(settings):
        resources = settings["set-resources"][rule]
        resources["runtime"] = "attempt"
        resources.pop("slurm_extra", None)
        if retries is not None:
            settings["retries"] = retries

    return edit


def run_uninterrupted_beside(reference_dir: Path, config: Path, target: str):
    """The same target run locally, start to end, while the SLURM run goes on."""
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", str(config)],
        cwd=reference_dir,
        env=snakemake_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


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
    reference = run_uninterrupted_beside(reference_dir, reference_config, LIMIT_TARGET)
    # Under a 1-minute limit the profile's SIGUSR1 "2 minutes before" would come at once;
    # this test is about the limit itself (SIGTERM). The early signal has its own test.
    without_early_signal = one_minute_per_attempt("train")
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
    jobs = submitted_jobs_of_rule(slurm_cluster, result.stdout, "train")
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


# --------------------------------------------------------------------------------------
# A sampling job that runs into its time limit

#: The cell whose sampling outlasts its first time limit, and what it writes.
SAMPLE_CELL = "digits/runs/linear-T400-seed0"
SAMPLE_TARGET = f"results/{SAMPLE_CELL}/samples.npz"
SAMPLE_LOG = "logs/digits/sample/linear-T400.log"

#: Sampling that takes a few minutes (400 steps x 2,000 images of the tiny U-Net in batches
#: of 40, 1 thread: about 2 minutes on an idle 2-core machine, several under load), against a
#: first time limit of 1 minute: the first attempt runs out of time with some batches done;
#: later attempts get 2, 3, ... minutes, and more retries than the profile's leave room for a
#: slow machine.
SAMPLING = {"num_samples": 2000, "batch_size": 40}
SAMPLING_T = 400
SAMPLING_RETRIES = 5
#: Hard limit (seconds) on that run: the attempts' 1 + 2 + ... minutes and the jobs before.
SAMPLING_TIMEOUT = 1500


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_sampling_past_its_time_limit_resumes_from_its_finished_batches(slurm_cluster, tmp_path):
    sections = {"grid": {"T": [SAMPLING_T]}, "sampling": SAMPLING}
    reference_dir, workdir = tmp_path / "uninterrupted", tmp_path / "repo"
    reference_config = write_time_limit_study(reference_dir, **sections)
    config = write_time_limit_study(workdir, **sections)
    reference = run_uninterrupted_beside(reference_dir, reference_config, SAMPLE_TARGET)
    try:
        result = subprocess.run(
            slurm_command_with_profile(
                workdir,
                SAMPLE_TARGET,
                "--configfile",
                str(config),
                timeout=SAMPLING_TIMEOUT,
                edit_profile=one_minute_per_attempt("sample", retries=SAMPLING_RETRIES),
            ),
            env=snakemake_env(slurm_cluster.env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        reference_output, _ = reference.communicate(timeout=SAMPLING_TIMEOUT)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
    assert reference.returncode == 0, reference_output[-4000:]
    assert result.returncode == 0, slurm_failure_report(result, slurm_cluster)

    # SLURM ended the first sampling attempt at its 1-minute limit; the last one completed.
    states = slurm_states(slurm_cluster)
    sampling = submitted_jobs_of_rule(slurm_cluster, result.stdout, "sample")
    assert len(sampling) >= 2, (sampling, result.stdout[-4000:])
    assert [states[job] for job in sampling] == ["TIMEOUT"] * (len(sampling) - 1) + ["COMPLETED"]

    # The last attempt took the batches the others had finished (all of them, where the attempt
    # before finished at its limit and SLURM still marked it TIMEOUT), and the samples are those
    # of the job never interrupted, bit for bit. The batches stay until the cell is scored.
    log = (workdir / SAMPLE_LOG).read_text()
    assert "already drawn" in log and "resuming at batch" in log, log[-3000:]
    assert_same_samples(reference_dir / "results" / SAMPLE_CELL, workdir / "results" / SAMPLE_CELL)
    kept = list((workdir / "results" / SAMPLE_CELL / "sampling").glob("batch-*.pt"))
    assert len(kept) == SAMPLING["num_samples"] // SAMPLING["batch_size"], kept
