"""Shared by the workflow tests: one local run of the tiny study, a local SLURM cluster, and
helpers to copy the workflow, run Snakemake (locally or through the SLURM profile) and
check that two runs of the same study produced the same numbers.

The tiny study (`tests/configs/tiny.yaml`) runs once per test session, in a private copy
of the workflow (`tiny_study`); tests that need its outputs compare against a read-only
copy of its ``results/`` taken right after the run, so a test that later edits files in
the run's working directory cannot change what the others compare against.

Helpers are plain functions here so that test modules can import them
(``from conftest import copy_workflow``); the ``tests/`` directory is on ``sys.path``
because pytest puts the directory of a ``conftest.py`` there.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from slurm_cluster import SlurmCluster, missing_requirements

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"

#: Hard limit (seconds) on one Snakemake run of the tiny study; a hang fails the test
#: instead of the whole CI job.
STUDY_TIMEOUT = 900

#: Set to "1" (CI does, as root) to make a missing SLURM fail the SLURM tests instead of
#: skipping them, so that a broken installation cannot pass unnoticed.
REQUIRE_SLURM = "DDPM_REQUIRE_SLURM"

#: Why SLURM tests cannot run here (None when they can).
slurm_reason = missing_requirements()
needs_slurm = pytest.mark.skipif(
    slurm_reason is not None and os.environ.get(REQUIRE_SLURM) != "1",
    reason=slurm_reason or "",
)


def pytest_collection_modifyitems(items):
    # `make test` runs the tests in two worker processes (pytest-xdist, --dist loadgroup).
    # The SLURM tests and the tests of the tiny study's run share one worker, in file order:
    # they share the session's cluster and tiny study, and only one process may start the
    # cluster. The unit tests run beside them on the other worker.
    for item in items:
        if "slurm" in item.keywords or "tiny_study" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("cluster"))


# --------------------------------------------------------------------------------------
# Running the workflow


@pytest.fixture
def one_thread():
    """One torch thread for the test (the machines that run the tests have two cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def images():
    from training_helpers import IMAGES

    return IMAGES()


@pytest.fixture(scope="module")
def diffusion():
    from training_helpers import DIFFUSION

    return DIFFUSION()


def copy_workflow(destination: Path) -> Path:
    """A private copy of the workflow, the library and the test configs in ``destination``.

    Results, logs and ``.snakemake/`` then stay out of the checkout, and a test may edit
    files of the copy freely. With ``config/`` beside the Snakefile the copy reads its
    configuration exactly as the repository does from its root.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    for name in ("Snakefile", "workflow", "src", "config", "tests/configs"):
        source, target = REPO / name, destination / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def snakemake_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Snakemake and its jobs: unbuffered logs, no display for figures."""
    return {
        **(base if base is not None else os.environ),
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
    }


def run_snakemake_locally(
    workdir: Path, *args: str, timeout: int = STUDY_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake in ``workdir`` to the end; its combined output is in ``stdout``."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=snakemake_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def snakemake_in_background(
    command: list[str], *, env: dict[str, str], output: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """Start ``command`` (a Snakemake run), its combined output going to ``output``.

    The test interrupts the run from outside and then waits for it. Should the test fail
    first, Snakemake gets SIGINT (it then stops its jobs) and, if that does not end it
    within 30 s, SIGKILL.
    """
    with open(output, "w") as handle:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for_checkpoint(
    checkpoint_dir: Path, process: subprocess.Popen, beyond: int, timeout: float
) -> int:
    """Wait until ``checkpoint_dir`` holds a training checkpoint of a step above ``beyond``.

    Returns:
        that step.

    Fails the test if the Snakemake run ``process`` ends or ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        steps = [int(path.stem.split("-")[1]) for path in checkpoint_dir.glob("step-*.pt")]
        if steps and max(steps) > beyond:
            return max(steps)
        if process.poll() is not None:
            pytest.fail(
                f"snakemake exited ({process.returncode}) before a checkpoint beyond step {beyond}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"no checkpoint beyond step {beyond} in {checkpoint_dir} after {timeout} s")
        time.sleep(0.05)


def script_process(root_pid: int, script_suffix: str) -> int | None:
    """Process id of the interpreter running a rule's script, among the descendants of
    ``root_pid``, or None when there is none.

    Snakemake runs a rule's script as ``python .snakemake/scripts/tmpXXXX.<script name>``,
    possibly under a shell whose command string ends in the same name; the interpreter is
    the deepest process with an argument ending in ``script_suffix``, and ending it ends
    the script (ending only the shell would leave the script running).
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        # "pid (command) state ppid ...": the command may contain spaces and parentheses.
        parent = int(stat_line.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, level = None, [root_pid]
    while level:
        level = [child for pid in level for child in children.get(pid, [])]
        for pid in level:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.decode(errors="replace").endswith(script_suffix) for arg in argv):
                found = pid
    return found


def write_config(path: Path, base: Path = TINY_CONFIG, **training) -> Path:
    """Write a copy of the config ``base`` to ``path`` with ``training`` settings replaced."""
    config = yaml.safe_load(base.read_text())
    config["training"].update(training)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass(frozen=True)
class StudyRun:
    """A finished run of a study.

    Attributes:
        workdir: the copy of the workflow it ran in. The end-to-end test edits library
            files here (to check what reruns); other tests should read ``results``.
        results: a read-only copy of ``workdir/results`` taken right after the run.
        output: Snakemake's combined output.
    """

    workdir: Path
    results: Path
    output: str


def _make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> StudyRun:
    """The tiny study run once locally (``--cores 2``), shared by every test that needs it."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny-study") / "repo")
    result = run_snakemake_locally(
        workdir, "--cores", "2", "--configfile", "tests/configs/tiny.yaml"
    )
    if result.returncode != 0:
        pytest.fail(f"the tiny study failed locally (exit {result.returncode}):\n{result.stdout}")
    reference = workdir.parent / "reference"
    shutil.copytree(workdir / "results", reference / "results")
    _make_read_only(reference)
    return StudyRun(workdir=workdir, results=reference / "results", output=result.stdout)


# --------------------------------------------------------------------------------------
# Comparing the outputs of two runs


def run_dirs(results: Path) -> dict[str, Path]:
    """Every training run directory under ``results``, by its path relative to ``results``
    (``dataset/runs/name``)."""
    return {
        path.relative_to(results).as_posix(): path
        for path in sorted(results.glob("*/runs/*"))
        if path.is_dir()
    }


def load_model_file(path: Path) -> dict:
    """The content of a ``model.pt``: ``record`` and ``ema_state_dict``."""
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(expected: dict, actual: dict, what: str) -> None:
    """Same keys, and every tensor equal bit for bit (dtype and shape included)."""
    assert list(actual) == list(expected), f"{what}: different keys"
    different = [
        name
        for name, tensor in expected.items()
        if tensor.dtype != actual[name].dtype or not torch.equal(tensor, actual[name])
    ]
    assert not different, f"{what}: tensors differ: {different[:10]}"


def train_log_rows(path: Path) -> list[tuple[int, float, float]]:
    """(step, loss, lr) of every row of a ``train_log.csv``; the wall time is left out.

    ``train`` writes losses with ``repr``, so ``float`` reads back the exact values.
    """
    with open(path, newline="") as handle:
        return [
            (int(row["step"]), float(row["loss"]), float(row["lr"]))
            for row in csv.DictReader(handle)
        ]


def assert_same_training(expected_run: Path, actual_run: Path) -> None:
    """Bit-identical EMA weights, loss log and snapshots in two training run directories."""
    expected = load_model_file(expected_run / "model.pt")
    actual = load_model_file(actual_run / "model.pt")
    assert_same_tensors(
        expected["ema_state_dict"], actual["ema_state_dict"], f"{actual_run.name} EMA weights"
    )
    for key in ("steps_trained", "last_interval_loss", "parameter_count", "data"):
        assert actual["record"][key] == expected["record"][key], f"{actual_run.name}: {key}"
    assert train_log_rows(actual_run / "train_log.csv") == train_log_rows(
        expected_run / "train_log.csv"
    ), f"{actual_run.name}: train_log.csv losses differ"
    if (expected_run / "snapshots.npz").exists():
        with (
            np.load(expected_run / "snapshots.npz") as want,
            np.load(actual_run / "snapshots.npz") as got,
        ):
            assert sorted(got.files) == sorted(want.files)
            for name in want.files:
                np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def assert_same_samples(expected_run: Path, actual_run: Path) -> None:
    """Every array of ``samples.npz`` equal, element for element."""
    with (
        np.load(expected_run / "samples.npz") as want,
        np.load(actual_run / "samples.npz") as got,
    ):
        assert sorted(got.files) == sorted(want.files), actual_run.name
        for name in want.files:
            assert got[name].dtype == want[name].dtype, f"{actual_run.name}: {name} dtype"
            np.testing.assert_array_equal(got[name], want[name], err_msg=actual_run.name)


def assert_same_metrics(expected_run: Path, actual_run: Path) -> None:
    """Every value of ``metrics.json`` equal: numbers exactly (null = not computed)."""
    want = json.loads((expected_run / "metrics.json").read_text())
    got = json.loads((actual_run / "metrics.json").read_text())
    assert sorted(got) == sorted(want), actual_run.name
    different = {
        key: (want[key], got[key])
        for key in want
        if not (
            got[key] == want[key]
            or (
                isinstance(want[key], float)
                and isinstance(got[key], float)
                and math.isnan(want[key])
                and math.isnan(got[key])
            )
        )
    }
    assert not different, f"{actual_run.name}: metrics differ (expected, actual): {different}"


# --------------------------------------------------------------------------------------
# Snakemake through the SLURM profile

#: Profile keys the tests replace (None removes the key), with the reason. Nothing else
#: of ``profiles/slurm`` is changed, so the tests exercise what a user runs.
PROFILE_OVERRIDES = {
    # No conda on the test machine; the jobs use the Python that runs the tests.
    "software-deployment-method": None,
    "use-conda": None,
    # Test jobs take seconds: poll squeue early. The cluster's MinJobAge is far above
    # 3 x 2 s, so the plugin keeps using squeue.
    "slurm-init-seconds-before-status-checks": 2,
}


#: The line of profiles/slurm a site edits to name its GPU model and GPU partition.
GPU_JOB_LINE = '<<: &gpu_job {gres: "gpu:1"}'


def write_test_profile(directory: Path, gpu_job: str | None = None) -> Path:
    """Copy profiles/slurm into ``directory`` with `PROFILE_OVERRIDES` applied; ``gpu_job``
    (e.g. ``'{gres: "gpu:tesla:1", slurm_partition: "gpu"}'``) replaces the GPU request of
    the profile's one ``&gpu_job`` line, as a site would edit it."""
    text = SLURM_PROFILE.read_text()
    if gpu_job is not None:
        assert text.count(GPU_JOB_LINE) == 1, "profiles/slurm lost its one GPU request line"
        text = text.replace(GPU_JOB_LINE, f"<<: &gpu_job {gpu_job}")
    settings = yaml.safe_load(text)
    for key, value in PROFILE_OVERRIDES.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return directory


def slurm_snakemake_command(
    workdir: Path, *args: str, timeout: int, gpu_job: str | None = None
) -> list[str]:
    """Snakemake through the test profile (``gpu_job``: see `write_test_profile`), bounded by
    ``timeout`` seconds.

    `timeout -k` because Snakemake waits for running jobs to finish when it gets SIGTERM.
    """
    profile = write_test_profile(workdir.parent / f"{workdir.name}-profile", gpu_job)
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


def run_snakemake_on_slurm(
    cluster: SlurmCluster, workdir: Path, *args: str, timeout: int, gpu_job: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Snakemake through the profile to the end; its combined output is in ``stdout``."""
    return subprocess.run(
        slurm_snakemake_command(workdir, *args, timeout=timeout, gpu_job=gpu_job),
        env=snakemake_env(cluster.env()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )


def submitted_job_ids(snakemake_output: str) -> list[str]:
    """SLURM job ids in the order of submission, from the plugin's 'has been submitted'
    lines (a retried job is submitted again under the same Snakemake job number)."""
    return re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", snakemake_output)


def submitted_jobs_of_rule(cluster: SlurmCluster, snakemake_output: str, rule: str) -> list[str]:
    """The SLURM job ids of one rule's jobs, in the order of submission (the plugin gives each
    job the comment ``rule_<rule>_...``)."""
    return [
        job_id
        for job_id in submitted_job_ids(snakemake_output)
        if re.match(rf"rule_{rule}(_wildcards|$)", slurm_job_details(cluster, job_id)["Comment"])
    ]


def slurm_job_details(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dictionary (the test cluster keeps finished jobs)."""
    result = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", job_id],
        env=cluster.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(re.findall(r"(\w+)=(\S*)", result.stdout))


def profile_runtime(rule: str, attempt: int) -> int:
    """Minutes profiles/slurm asks for ``rule``'s job at ``attempt`` (its runtime expression)."""
    expression = yaml.safe_load(SLURM_PROFILE.read_text())["set-resources"][rule]["runtime"]
    return int(eval(str(expression), {"min": min, "max": max}, {"attempt": attempt}))


def slurm_time(minutes: int) -> str:
    """A time limit as ``scontrol`` shows it (``[D-]HH:MM:SS``)."""
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def slurm_states(cluster: SlurmCluster) -> dict[str, str]:
    """State of every job the controller knows, by job id."""
    return {job_id: state for job_id, _, state in cluster.squeue()}


def slurm_failure_report(result: subprocess.CompletedProcess, cluster: SlurmCluster) -> str:
    return f"snakemake exited {result.returncode}\n{result.stdout[-6000:]}\n{cluster.logs(15)}"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """One local SLURM cluster for the session; its daemons are ended afterwards."""
    if slurm_reason is not None:
        if os.environ.get(REQUIRE_SLURM) == "1":
            pytest.fail(f"{REQUIRE_SLURM}=1 but {slurm_reason}")
        pytest.skip(slurm_reason)
    # More memory than this machine has (slurmd trusts the configuration): the profile's GPU
    # jobs ask for 16 GB each, as on a real GPU node, and two of them may run at once here.
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), memory_mb=64000)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
