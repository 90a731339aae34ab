"""What a run may resume from: intact checkpoints of the same settings, data and code.

Damage is simulated as bit rot would do it: bytes flipped inside a tensor's storage,
which leaves the file loadable (the zip container does not check its records) and only
the checksum can tell.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from training_helpers import assert_bit_identical, ema_weights, run_spec, small_config

from ddpm import ModelFileError
from ddpm.checkpoints import content_digest, load_model
from ddpm.training.loop import train
from ddpm.training.outputs import code_fingerprint
from ddpm.unet import UNet
from ddpm.workflow.code import module_closure

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def resumed_from(run_dir: Path):
    return json.loads((run_dir / "run.json").read_text())["resumed_from_step"]


def clear_outputs(run_dir: Path):
    # What the workflow does before a rerun: declared outputs go, checkpoints stay.
    for name in ("model.pt", "train_log.csv", "run.json", "snapshots.npz"):
        (run_dir / name).unlink(missing_ok=True)


def flip_bytes_of(path: Path, tensor: torch.Tensor) -> None:
    """Flip bytes inside ``tensor``'s storage in the file ``path`` (found by its content)."""
    data = bytearray(path.read_bytes())
    raw = tensor.contiguous().numpy().tobytes()
    offset = data.find(raw)
    assert offset > 0 and data.find(raw, offset + 1) == -1, "the tensor's bytes are not unique"
    for i in range(4):
        data[offset + i] ^= 0x5A
    path.write_bytes(bytes(data))


def interrupt_after(monkeypatch, calls: int):
    """Make the training-mode U-Net fail from forward call ``calls + 1`` on."""
    original, count = UNet.forward, {"n": 0}

    def forward(self, x, t):
        if self.training:
            count["n"] += 1
            if count["n"] > calls:
                raise KeyError("stopped")
        return original(self, x, t)

    monkeypatch.setattr(UNet, "forward", forward)


# --- damage ----------------------------------------------------------------------------
def test_a_checkpoint_with_damaged_tensor_bytes_is_set_aside_and_the_previous_one_resumed(
    tmp_path, images, diffusion, caplog
):
    train(images, run_spec(small_config()), tmp_path)
    expected = ema_weights(tmp_path)
    newest = tmp_path / "checkpoints" / "step-00000006.pt"
    weight = torch.load(newest, weights_only=True)["model"]["input_conv.weight"]
    flip_bytes_of(newest, weight)
    damaged = torch.load(newest, weights_only=True)  # still loads: only the checksum can tell
    assert not torch.equal(damaged["model"]["input_conv.weight"], weight)
    clear_outputs(tmp_path)

    with caplog.at_level(logging.WARNING):
        train(images, run_spec(small_config()), tmp_path)
    assert "step-00000006.pt" in caplog.text and "does not match the checksum" in caplog.text
    assert (tmp_path / "checkpoints" / "step-00000006.pt.unusable").exists()
    assert resumed_from(tmp_path) == 4
    assert_bit_identical(ema_weights(tmp_path), expected)


def test_a_damaged_model_file_is_refused_with_what_to_do(tmp_path, images, diffusion):
    train(images, run_spec(small_config(steps=2)), tmp_path)
    load_model(tmp_path / "model.pt")  # intact: loads
    ema = ema_weights(tmp_path)
    flip_bytes_of(tmp_path / "model.pt", ema["input_conv.weight"])
    with pytest.raises(ModelFileError, match="does not match the checksum.*Train again"):
        load_model(tmp_path / "model.pt")


def test_model_files_of_another_version_are_refused_with_what_to_do(tmp_path, images):
    train(images, run_spec(small_config(steps=2)), tmp_path)
    content = torch.load(tmp_path / "model.pt", weights_only=True)
    content["record"]["format_version"] = 2  # the format before the record was the spec
    torch.save(content, tmp_path / "old.pt")
    with pytest.raises(ModelFileError, match="version 2.*train the model again"):
        load_model(tmp_path / "old.pt")
    content = torch.load(tmp_path / "model.pt", weights_only=True)
    del content["sha256"]  # a current file must carry its checksum
    torch.save(content, tmp_path / "unsealed.pt")
    with pytest.raises(ModelFileError, match="no checksum"):
        load_model(tmp_path / "unsealed.pt")


def test_the_checksum_covers_every_tensor_byte_and_every_value():
    content = {"step": 3, "w": torch.arange(4.0), "rows": [[1, 0.5]], "name": "x"}
    digest = content_digest(content)
    assert content_digest({**content, "sha256": "anything"}) == digest  # its own entry aside
    assert content_digest({**content, "w": torch.tensor([0.0, 1, 2, 3.0000002])}) != digest
    assert content_digest({**content, "w": torch.arange(4.0).double()}) != digest  # dtype
    assert content_digest({**content, "rows": [[1, 0.25]]}) != digest
    assert content_digest({**content, "step": 4}) != digest


# --- settings and code -----------------------------------------------------------------
def test_changing_how_often_to_log_and_snapshot_keeps_a_half_finished_run(
    tmp_path, monkeypatch, images, diffusion
):
    with monkeypatch.context() as patch:
        interrupt_after(patch, 5)
        with pytest.raises(KeyError):
            train(images, run_spec(small_config(snapshot_every=None)), tmp_path)
    changed = small_config(
        log_every=3, snapshot_every=3, divergence_patience=7, divergence_factor=None
    )
    train(images, run_spec(changed), tmp_path)
    assert resumed_from(tmp_path) == 4


def test_a_checkpoint_written_by_different_code_is_set_aside(
    tmp_path, monkeypatch, images, diffusion, caplog
):
    train(images, run_spec(small_config()), tmp_path)
    clear_outputs(tmp_path)
    monkeypatch.setattr("ddpm.training.outputs.code_fingerprint", lambda: "edited code")
    with caplog.at_level(logging.WARNING):
        train(images, run_spec(small_config()), tmp_path)
    assert "written by different code" in caplog.text
    assert resumed_from(tmp_path) is None
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["code_fingerprint"] == "edited code"


def test_the_code_fingerprint_follows_the_modules_the_training_imports(tmp_path):
    modules = {name.removeprefix("ddpm.") for name in module_closure("ddpm.training.loop")}
    assert {"unet", "diffusion", "schedules", "runtime", "training.loop"} <= modules
    assert not {"report", "sampling", "plots", "cli", "analysis"} & modules

    src = tmp_path / "src"
    shutil.copytree(
        REPO / "src" / "ddpm", src / "ddpm", ignore=shutil.ignore_patterns("__pycache__")
    )
    before = code_fingerprint(package_dir=src / "ddpm")
    report = src / "ddpm" / "report" / "build.py"
    report.write_text(report.read_text() + "\n# an edit outside the training\n")
    assert code_fingerprint(package_dir=src / "ddpm") == before
    unet = src / "ddpm" / "unet.py"
    unet.write_text(unet.read_text().replace("10000.0", "5000.0"))
    assert code_fingerprint(package_dir=src / "ddpm") != before


def test_a_resumed_auto_run_keeps_the_precision_of_its_checkpoint(
    tmp_path, monkeypatch, images, diffusion
):
    # "auto" times both precisions at each start; a retry must not switch precision midway.
    from ddpm.runtime import PrecisionChoice

    def picks(precision):
        return lambda *args, **kwargs: PrecisionChoice(precision, f"auto: timed, {precision}")

    with monkeypatch.context() as patch:
        patch.setattr("ddpm.training.loop.choose_precision", picks("bf16"))
        interrupt_after(patch, 5)
        with pytest.raises(KeyError):
            train(images, run_spec(small_config(precision="auto")), tmp_path)
    monkeypatch.setattr("ddpm.training.loop.choose_precision", picks("fp32"))
    train(images, run_spec(small_config(precision="auto")), tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["resumed_from_step"] == 4
    assert record["precision"] == "bf16"
    assert "kept from the checkpoint" in record["precision_reason"]
