"""Training runs that go wrong: divergence, signals, a second writer, a full or read-only disk.

Signals and the run-directory lock are tested on real processes: a child trains (the
script below) and the test signals it, or trains into the same directory beside it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_helpers import IMAGES, assert_bit_identical, ema_weights, run_spec, small_config

import ddpm.checkpoints
import ddpm.files
from ddpm import ConfigError, TrainingError
from ddpm.files import StorageError
from ddpm.training.config import TrainingConfig
from ddpm.training.loop import train

REPO = Path(__file__).resolve().parents[1]
#: A run long enough (seconds) to be signalled while it trains.
# fp32: "auto" would time both precisions on a CPU with native bf16, and a killed run and its
# uninterrupted twin could then differ in precision.
LONG = dict(
    steps=200, batch_size=8, checkpoint_every=20, log_every=7, learning_rate=1e-3, precision="fp32"
)

#: The child: trains LONG into argv[1], logging to stderr as the CLI and the rules do.
CHILD = f"""
import logging, os, sys, time, torch
sys.path.insert(0, {str(REPO / "tests")!r})
from test_training_faults import IMAGES, LONG, run_spec
from ddpm.training.config import TrainingConfig
from ddpm.training.loop import train
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
torch.set_num_threads(1)
stall = os.environ.get("STALL_WRITING")  # hang inside the write of this file, for a kill
if stall:
    save = torch.save
    def stalling_save(obj, handle, *args, **kwargs):
        save(obj, handle, *args, **kwargs)
        if stall in getattr(handle, "name", ""):
            time.sleep(600)
    torch.save = stalling_save
train(IMAGES(), run_spec(TrainingConfig(**LONG, device="cpu")), sys.argv[1])
"""


pytestmark = pytest.mark.usefixtures("one_thread")


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.pt"))


# --- divergence ------------------------------------------------------------------------
def test_a_huge_learning_rate_stops_as_diverged_and_names_the_step(tmp_path):
    # With clipping the loss stays finite (about 1e20 here), so only the divergence check stops it.
    cfg = small_config(steps=40, learning_rate=1e9, divergence_patience=5, checkpoint_every=10)
    with pytest.raises(TrainingError, match=r"diverged.*up to step \d+") as info:
        train(IMAGES(), run_spec(cfg), tmp_path)
    message = str(info.value)
    assert "Lower learning_rate" in message and "divergence_factor: null" in message
    assert not (tmp_path / "model.pt").exists()
    step = int(re.search(r"up to step (\d+)", message).group(1))
    assert step < 10 and not checkpoint_steps(tmp_path)  # stopped before its first checkpoint


def test_a_run_shorter_than_the_divergence_window_that_blew_up_is_no_success(tmp_path):
    # 40 steps at a learning rate of 1e9 with clipping: finite, about 1e21 at the end, but the
    # default patience (100 steps) never fills; the run is judged at its end.
    cfg = small_config(steps=40, learning_rate=1e9, checkpoint_every=40)
    assert cfg.divergence_patience > 40
    with pytest.raises(TrainingError, match=r"diverged.*40 steps up to step 40"):
        train(IMAGES(), run_spec(cfg), tmp_path)
    assert not (tmp_path / "model.pt").exists()


def test_divergence_check_can_be_switched_off(tmp_path):
    cfg = small_config(steps=12, learning_rate=1e9, divergence_patience=5, divergence_factor=None)
    train(IMAGES(), run_spec(cfg), tmp_path)
    assert record(tmp_path)["last_interval_loss"] > 1e6  # it did diverge, and was let be


def test_a_healthy_run_is_not_taken_for_diverged_with_the_defaults(tmp_path):
    cfg = small_config(steps=150, checkpoint_every=150, log_every=10)  # factor 100, patience 100
    assert (cfg.divergence_factor, cfg.divergence_patience) == (100, 100)
    train(IMAGES(), run_spec(cfg), tmp_path)
    assert record(tmp_path)["steps_trained"] == 150


@pytest.mark.parametrize(
    "overrides",
    [{"divergence_factor": 0.5}, {"divergence_factor": "big"}, {"divergence_patience": 0}],
)
def test_invalid_divergence_settings_are_named(overrides):
    with pytest.raises(ConfigError, match=next(iter(overrides))):
        small_config(**overrides).validate()


# --- reading the loss back --------------------------------------------------------------
def test_the_loss_is_read_back_at_log_rows_and_checkpoints_not_every_step(tmp_path, monkeypatch):
    # Each read of a device tensor on the host (item, tolist) makes the host wait for a GPU.
    # Counted are the library's reads (torch's Adam reads its CPU step counters itself).
    reads = {"item": 0, "tolist": 0}
    for name in reads:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            if sys._getframe(1).f_globals.get("__name__", "").startswith("ddpm."):
                reads[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    train(
        IMAGES(),
        run_spec(small_config(steps=12, log_every=4, checkpoint_every=6)),
        tmp_path,
    )
    # One read per log row (4, 8, 12) and per checkpoint with unread losses (6): not 12.
    assert reads == {"item": 0, "tolist": 4}, reads


def test_a_non_finite_loss_between_log_rows_still_names_its_step(tmp_path, monkeypatch):
    from ddpm.unet import UNet

    original, calls = UNet.forward, {"n": 0}

    def forward(self, x, t):
        out = original(self, x, t)
        if self.training:
            calls["n"] += 1
            if calls["n"] >= 3:
                return out * float("inf")
        return out

    monkeypatch.setattr(UNet, "forward", forward)
    cfg = small_config(
        steps=10, log_every=5, checkpoint_every=5, snapshot_every=5, snapshot_count=2
    )
    with pytest.raises(TrainingError, match="at step 3 ") as info:
        train(IMAGES(), run_spec(cfg), tmp_path)
    assert "no good checkpoint was written yet" in str(info.value)
    assert not checkpoint_steps(tmp_path)  # nothing was saved from the broken weights


# --- signals ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    torch.set_num_threads(1)
    train(IMAGES(), run_spec(TrainingConfig(**LONG, device="cpu")), run_dir)
    return ema_weights(run_dir)


def start_child(run_dir: Path, stall_writing: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    env["STALL_WRITING"] = stall_writing
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_first_checkpoint(run_dir: Path, child: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while not checkpoint_steps(run_dir):
        assert child.poll() is None, child.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("signum", "code", "checkpoints"),
    [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, True), (signal.SIGUSR1, 138, True)],
    ids=["SIGINT", "SIGTERM", "SIGUSR1"],
)
def test_a_signal_stops_training_in_one_line_and_the_retry_resumes_exactly(
    tmp_path, uninterrupted, signum, code, checkpoints
):
    child = start_child(tmp_path)
    wait_for_first_checkpoint(tmp_path, child)
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=120)

    assert child.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if "training stopped" in line]
    assert len(lines) == 1, stderr[-3000:]
    match = re.search(
        rf"stopped by {signal.Signals(signum).name} at step (\d+) of 200; "
        r"started again, it resumes from step (\d+)",
        lines[0],
    )
    assert match, lines[0]
    stopped, resumes = int(match.group(1)), int(match.group(2))
    assert 0 < stopped < 200
    if checkpoints:  # SIGTERM/SIGUSR1 write a checkpoint exactly where it stopped
        assert resumes == stopped and checkpoint_steps(tmp_path)[-1] == stopped
    else:  # Ctrl-C goes back to the last regular checkpoint
        assert resumes == checkpoint_steps(tmp_path)[-1] == 20 * (stopped // 20)
    assert not (tmp_path / "model.pt").exists()

    train(IMAGES(), run_spec(TrainingConfig(**LONG, device="cpu")), tmp_path)
    assert record(tmp_path)["resumed_from_step"] == resumes
    assert_bit_identical(ema_weights(tmp_path), uninterrupted)


def test_signal_handlers_are_restored_after_training(tmp_path):
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    # Whatever SIGINT did before (a shell without job control starts background jobs with it
    # ignored), it does again after.
    sigint_before = signal.getsignal(signal.SIGINT)
    try:
        train(IMAGES(), run_spec(small_config(steps=2)), tmp_path)
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is sigint_before
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- one writer ------------------------------------------------------------------------
def test_a_second_writer_is_refused_and_a_killed_ones_leftovers_are_cleared(
    tmp_path, uninterrupted
):
    # The child hangs while writing its checkpoint of step 40, as if killed in the middle.
    child = start_child(tmp_path, stall_writing="step-00000040")
    deadline = time.monotonic() + 120
    while not (leftovers := list((tmp_path / "checkpoints").glob(".step-00000040.pt.*.tmp"))):
        assert child.poll() is None, child.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the child never wrote its step-40 checkpoint"
        time.sleep(0.02)
    other = tmp_path / "checkpoints" / "notes.tmp"  # not a name the writer uses
    other.write_text("mine")
    started = time.monotonic()
    with pytest.raises(TrainingError, match=rf"pid {child.pid} on host \S+"):
        train(IMAGES(), run_spec(TrainingConfig(**LONG, device="cpu")), tmp_path)
    assert time.monotonic() - started < 5  # refused at once, not after a wait
    assert all(path.exists() for path in leftovers)  # a live writer's files are left alone

    child.kill()  # SIGKILL mid-write: the temporary stays, the OS drops the lock
    child.communicate(timeout=60)
    assert all(path.exists() for path in leftovers)
    train(IMAGES(), run_spec(TrainingConfig(**LONG, device="cpu")), tmp_path)
    assert not any(path.exists() for path in leftovers) and other.exists()
    assert record(tmp_path)["resumed_from_step"] == 20
    assert_bit_identical(ema_weights(tmp_path), uninterrupted)


# --- disks -----------------------------------------------------------------------------
def no_space():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def no_space_hidden_by_torch():
    # What torch.save into a file on a full tmpfs raised: its zip writer's clean-up fails
    # after the OSError, and the RuntimeError hides it (only as its __context__).
    try:
        no_space()
    except OSError:
        raise RuntimeError(  # noqa: B904 - torch raises it so, with the OSError as context
            "[enforce fail at inline_container.cc:672] . unexpected pos 302016 vs 301904"
        )


@pytest.mark.parametrize("failure", [no_space, no_space_hidden_by_torch])
def test_a_full_disk_names_the_file_keeps_the_last_checkpoint_and_resumes(
    tmp_path, monkeypatch, failure
):
    train(IMAGES(), run_spec(small_config()), tmp_path / "whole")
    original = torch.save

    def full_disk(obj, handle, *args, **kwargs):
        if "step-00000004" in getattr(handle, "name", ""):
            failure()
        return original(obj, handle, *args, **kwargs)

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(ddpm.checkpoints.torch, "save", full_disk)
        with pytest.raises(StorageError) as info:
            train(IMAGES(), run_spec(small_config()), run_dir)
    message = str(info.value)
    assert "step-00000004.pt" in message and "the disk is full" in message, message
    assert "step-00000002.pt" in message and "resumes from it" in message, message
    assert info.value.errno == errno.ENOSPC
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000002.pt"]

    train(IMAGES(), run_spec(small_config()), run_dir)  # room again
    assert record(run_dir)["resumed_from_step"] == 2
    assert_bit_identical(ema_weights(run_dir), ema_weights(tmp_path / "whole"))


def test_a_read_only_run_directory_is_found_out_before_training(tmp_path, monkeypatch):
    # chmod does not stop root (CI runs as root), so the file system's answer is simulated
    # where the probe asks it.
    def read_only(directory):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(ddpm.files, "_create_probe", read_only)
    monkeypatch.setattr(
        ddpm.training.loop._Run, "__init__", lambda *a: pytest.fail("training started")
    )
    with pytest.raises(StorageError, match="read-only") as info:
        train(IMAGES(), run_spec(small_config()), tmp_path / "run")
    assert str(tmp_path / "run") in str(info.value)
    assert "use a directory this process may write to" in str(info.value)
