"""The SLURM profile against a real single-node SLURM cluster started by the tests.

`tests/slurm_cluster.py` brings up munged, slurmctld and slurmd (Debian 12's SLURM 22.05;
`bash .ci/install-slurm.sh` installs them) and Snakemake runs workflows through
``profiles/slurm``. The tests check what a cluster user relies on: every job really is a
SLURM job, ``train`` asks SLURM for a GPU (once: the sbatch line the plugin builds is
checked with fake SLURM commands, without a cluster), a job that SLURM kills is submitted
again and picks up where it stopped, and the real workflow run on
``tests/configs/tiny.yaml`` through SLURM gives the same numbers, bit for bit, as the same
study run locally. Time limits are in ``tests/test_slurm_time_limits.py``.

They run whenever SLURM is installed and the tests run as root, and are skipped with the
reason otherwise; ``-m "not slurm"`` deselects them. Two settings of the profile are
changed for the tests, and only these (``PROFILE_OVERRIDES`` in ``conftest.py``): no conda
(this machine has none; the test environment already holds every package) and a first
status check after 2 s instead of 20 s, because the test jobs last seconds.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import (
    GPU_JOB_LINE,
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
    # One GPU per GPU job, requested once, as GRES (which every SLURM understands); `gpu` is
    # left out, so the plugin adds no `--gpus` next to it. The site edits one line.
    assert SLURM_PROFILE.read_text().count(GPU_JOB_LINE) == 1
    for rule, resources in settings["set-resources"].items():
        assert resources["gres"] == "gpu:1" and "gpu" not in resources, rule
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
    output:
        "model.txt",
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
    """docs/cluster.md: a GPU model goes into the profile's gres string (a site edits the one
    `&gpu_job` line; loaded, every GPU rule holds the edited request)."""

    def ask_for_a100(settings):
        for resources in settings["set-resources"].values():
            resources["gres"] = "gpu:a100:1"

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
    # it when the job fails; its runtime, from the profile, grows with every attempt.
    output:
        "model.txt",
    params:
        checkpoint="checkpoints/last.txt",
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


def two_minutes_per_attempt(settings):
    """A profile edit, as a site sizes its runtimes: training gets 2 minutes per attempt."""
    settings["set-resources"]["train"]["runtime"] = "2 * attempt"


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
            slurm_command_with_profile(
                workdir, timeout=STAND_IN_TIMEOUT, edit_profile=two_minutes_per_attempt
            ),
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
    # runtime = 2 min x attempt (the profile's expression), and SLURM enforces it as the
    # job's time limit.
    assert runtime == "4"
    assert slurm_job_details(slurm_cluster, first_job)["TimeLimit"] == "00:02:00"
    assert slurm_job_details(slurm_cluster, second_job)["TimeLimit"] == "00:04:00"
    assert submitted_job_ids(log), "the plugin did not report its submissions"


# --------------------------------------------------------------------------------------
# The real workflow

#: Rules that the workflow marks local: they must run on the login node, never as jobs.
LOCAL_RULES = ("prepare_dataset", "inception_weights", "collect_metrics", "report")

#: How the tests' cluster wants GPUs asked for, written into the profile's one GPU-request line
#: as a site would: the GPU model of its GRES and the partition its GPUs live in.
SITE_GPU_JOB = '{gres: "gpu:tesla:1", slurm_partition: "gpu"}'


def rule_of(job_details: dict[str, str]) -> str:
    """The Snakemake rule of a SLURM job, from the comment the plugin gives it."""
    return re.match(r"rule_([a-z_]+?)(?:_wildcards.*)?$", job_details["Comment"])[1]


def job_environments(workdir: Path) -> dict[str, str]:
    """SLURM job id -> the CUDA_VISIBLE_DEVICES each rule job logged at its start."""
    found = {}
    for log in (workdir / "logs").rglob("*.log"):
        for job_id, visible in re.findall(
            r"SLURM job (\d+), CUDA_VISIBLE_DEVICES=(\S+),", log.read_text()
        ):
            found[job_id] = visible
    return found


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_real_workflow_through_slurm_matches_the_local_run(slurm_cluster, tiny_study, tmp_path):
    from test_profiles import gpu_capable_rules

    workdir = copy_workflow(tmp_path / "repo")
    result = run_snakemake_on_slurm(
        slurm_cluster,
        workdir,
        "--configfile",
        str(workdir / "tests" / "configs" / TINY_CONFIG.name),
        timeout=STUDY_TIMEOUT,
        gpu_job=SITE_GPU_JOB,
    )
    assert result.returncode == 0, slurm_failure_report(result, slurm_cluster)
    assert (workdir / "results" / "report.html").exists()

    # Every submitted job ran to completion as a SLURM job: none pended for want of a GPU
    # or a partition.
    submitted = set(submitted_job_ids(result.stdout))
    known = slurm_states(slurm_cluster)
    assert submitted and all(known.get(job_id) == "COMPLETED" for job_id in submitted), known

    # What each job asked SLURM for: every GPU-capable job one GPU, of the site's model, in
    # the site's GPU partition; every other job no GPU, in the default partition.
    details = {job_id: slurm_job_details(slurm_cluster, job_id) for job_id in submitted}
    rules = {job_id: rule_of(job) for job_id, job in details.items()}
    assert gpu_capable_rules() <= set(rules.values()), sorted(set(rules.values()))
    seen_by_jobs = job_environments(workdir)
    for job_id, job in details.items():
        on_gpu = rules[job_id] in gpu_capable_rules()
        assert gpus_asked_for(job) == (1 if on_gpu else 0), job
        assert ("gpu:tesla:1" in job.get("TresPerNode", "")) == on_gpu, job
        assert job["Partition"] == ("gpu" if on_gpu else "debug"), job
        # SLURM showed a GPU job the GPU it gave it, and a CPU job none.
        assert (seen_by_jobs[job_id] != "unset") == on_gpu, (rules[job_id], seen_by_jobs[job_id])

    # Each run was trained, sampled and scored in a SLURM job of its own: one kept SLURM
    # log per job, named by the job id Snakemake submitted; the local rules never became
    # SLURM jobs.
    runs = run_dirs(tiny_study.results)
    assert sorted(run_dirs(workdir / "results")) == sorted(runs) and len(runs) == 4
    slurm_logs = workdir / ".snakemake" / "slurm_logs"
    for rule in ("train", "sample", "score"):
        job_ids = [log.stem for log in (slurm_logs / f"rule_{rule}").rglob("*.log")]
        assert len(job_ids) == len(set(job_ids)) == len(runs), (rule, job_ids)
        assert set(job_ids) <= submitted, (rule, job_ids, submitted)
    for rule in LOCAL_RULES:
        assert not (slurm_logs / f"rule_{rule}").exists(), f"{rule} ran as a SLURM job"

    # The same numbers as the local run of the same study, bit for bit: where a job runs
    # must not change what it computes.
    for name, local_run in runs.items():
        slurm_run = workdir / "results" / name
        assert_same_training(local_run, slurm_run)
        assert_same_samples(local_run, slurm_run)
        assert_same_metrics(local_run, slurm_run)


@pytest.mark.slurm
@pytest.mark.slow
@needs_slurm
def test_a_gpu_job_that_cannot_use_its_gpu_stops_naming_the_cause(slurm_cluster, tmp_path):
    """Given a GPU by the profile, with the device left to `auto`, a job must not fall back to
    the CPU: the test cluster's GPUs have no device behind them, so the job stops at once."""
    workdir = copy_workflow(tmp_path / "repo")
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["training"]["device"] = "auto"
    path = workdir / "tests" / "configs" / "auto-device.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    target = "results/digits/classifier/classifier.pt"
    result = run_snakemake_on_slurm(
        slurm_cluster,
        workdir,
        target,
        "--configfile",
        str(path),
        "--retries",
        "0",
        timeout=STAND_IN_TIMEOUT,
    )
    assert result.returncode != 0, result.stdout[-3000:]
    log = (workdir / "logs" / "digits" / "train_classifier.log").read_text()
    assert "this job was given a GPU by its profile (gres=gpu:1), but" in log, log[-3000:]
    assert not (workdir / target).exists()
