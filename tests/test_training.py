"""Training (outputs, exact resume, failure modes), model loading, and sample generation."""

import csv
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import UNET, assert_bit_identical, ema_weights, run_spec

from ddpm import ConfigError, DataError, ModelFileError, TrainingError
from ddpm.checkpoints import load_model, seal
from ddpm.diffusion import from_model_range, to_model_range
from ddpm.sampling import (
    generate,
    image_grid,
    load_samples,
    reconstruction_series,
    save_png,
    save_reconstruction,
    save_samples,
)
from ddpm.training.config import TrainingConfig
from ddpm.training.loop import train
from ddpm.training.outputs import RECORD_KEYS, code_fingerprint
from ddpm.training.state import _BatchSampler
from ddpm.unet import UNet
from ddpm.unet_config import UNetConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def config(**overrides) -> TrainingConfig:
    # fp32: "auto" would time both precisions on a CPU with native bf16, and the choice (and
    # the extra forward passes it makes) would depend on the machine.
    values = dict(
        steps=7,
        batch_size=8,
        checkpoint_every=3,
        log_every=2,
        learning_rate=1e-3,
        device="cpu",
        precision="fp32",
    )
    return TrainingConfig(**{**values, **overrides})


def read_log(run_dir):
    with open(run_dir / "train_log.csv") as handle:
        return list(csv.DictReader(handle))


def final_checkpoint(run_dir):
    path = max((run_dir / "checkpoints").glob("step-*.pt"))
    return torch.load(path, weights_only=True)


def clear_outputs(run_dir):
    # What the workflow does before a retry: declared outputs go, checkpoints stay.
    for name in ("model.pt", "train_log.csv", "run.json", "snapshots.npz"):
        (run_dir / name).unlink(missing_ok=True)


class Interrupted(Exception):
    pass


def fail_training_forward(monkeypatch, after_calls: int, action):
    """Make the U-Net's training-mode forward call ``action`` from call ``after_calls + 1`` on."""
    original = UNet.forward
    calls = {"n": 0}

    def forward(self, x, t):
        if self.training:
            calls["n"] += 1
            if calls["n"] > after_calls:
                return action(original(self, x, t))
        return original(self, x, t)

    monkeypatch.setattr(UNet, "forward", forward)


def raise_interrupted(_):
    raise Interrupted


@pytest.fixture(scope="module")
def trained(tmp_path_factory, images, diffusion):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = config(snapshot_every=3, snapshot_count=4)
    torch.set_num_threads(1)
    path = train(images, run_spec(cfg, dataset="random"), run_dir)
    return path, run_dir, cfg


# --- outputs -------------------------------------------------------------------------------
def test_training_writes_model_log_record_and_snapshots(trained, diffusion):
    path, run_dir, cfg = trained
    assert path == run_dir / "model.pt"

    rows = read_log(run_dir)
    assert list(rows[0]) == ["step", "loss", "lr", "seconds"]
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 7]  # every log_every steps, plus the last
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds)

    record = json.loads((run_dir / "run.json").read_text())
    assert record["dataset"] == "random"
    assert set(RECORD_KEYS) <= set(record)
    assert record["unet"] == UNET.to_dict()
    assert record["schedule"] == diffusion.schedule.describe()
    assert record["diffusion"] == {
        "variance": "beta",
        "loss": "mse",
        "clip_denoised": True,
        "prediction": "eps",
    }
    assert record["training"] == cfg.to_dict()
    assert record["steps_trained"] == 7
    assert record["last_interval_loss"] == pytest.approx(float(rows[-1]["loss"]))
    assert record["parameter_count"] == sum(p.numel() for p in UNet(UNET).parameters())
    assert {"python", "torch", "torchvision", "torch_fidelity", "numpy", "ddpm"} <= set(
        record["versions"]
    )
    assert record["wall_seconds"] > 0
    # What precision the run used and why, and which code computed it.
    assert record["precision"] == "fp32" and isinstance(record["precision_reason"], str)
    assert record["precision_reason"]
    assert record["code_fingerprint"] == code_fingerprint()
    assert torch.load(path, weights_only=True)["record"] == record

    with np.load(run_dir / "snapshots.npz") as snapshots:
        assert snapshots["steps"].tolist() == [3, 6, 7]
        assert snapshots["images"].shape == (3, 4, 1, 8, 8)
        assert snapshots["images"].dtype == np.uint8

    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert checkpoints == ["step-00000006.pt", "step-00000007.pt"]  # keep_checkpoints=2


def test_load_model_rebuilds_the_ema_model_and_diffusion(trained, diffusion):
    path, run_dir, _ = trained
    model, loaded_diffusion, record = load_model(path)
    assert isinstance(model, UNet) and not model.training
    assert model.config == UNET
    assert_bit_identical(model.state_dict(), final_checkpoint(run_dir)["ema_model"])
    np.testing.assert_array_equal(loaded_diffusion.schedule.betas, diffusion.schedule.betas)
    assert loaded_diffusion.variance == "beta" and loaded_diffusion.clip_denoised
    assert record["dataset"] == "random"


def test_logged_loss_is_the_mean_over_each_interval(tmp_path, images, diffusion):
    train(images, run_spec(config(steps=5, log_every=1)), tmp_path / "every")
    train(images, run_spec(config(steps=5, log_every=3)), tmp_path / "grouped")
    per_step = [float(r["loss"]) for r in read_log(tmp_path / "every")]
    grouped = [float(r["loss"]) for r in read_log(tmp_path / "grouped")]
    assert grouped == pytest.approx([np.mean(per_step[:3]), np.mean(per_step[3:])], rel=1e-12)


def test_first_loss_is_the_noise_energy_of_a_zero_prediction(tmp_path, images, diffusion):
    # The untrained U-Net outputs exactly 0, so the first MSE is the mean of eps^2 over the batch.
    train(images, run_spec(config(steps=1, log_every=1, batch_size=24)), tmp_path)
    first = float(read_log(tmp_path)[0]["loss"])
    generator = torch.Generator().manual_seed(0 + 1)  # the loss generator of seed 0
    torch.randint(1, diffusion.T + 1, (24,), generator=generator)
    noise = torch.randn((24, 1, 8, 8), generator=generator)
    assert first == pytest.approx(noise.square().mean().item(), rel=1e-6)


def test_learning_rate_warms_up_linearly(tmp_path, images, diffusion):
    train(
        images,
        run_spec(config(steps=6, log_every=1, warmup_steps=4, learning_rate=1e-3)),
        tmp_path,
    )
    lrs = [float(r["lr"]) for r in read_log(tmp_path)]
    assert lrs == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3])


def test_ema_follows_its_formula(tmp_path, images, diffusion):
    train(images, run_spec(config(steps=1, ema_decay=0.999)), tmp_path)
    torch.manual_seed(0)
    initial = UNet(UNET).state_dict()  # train seeds the global generator with the run's seed
    state = final_checkpoint(tmp_path)
    decay = min(0.999, (1 + 0) / (10 + 0))  # the warm-up of the EMA decay at its first update
    for key, weight in state["model"].items():
        expected = decay * initial[key] + (1 - decay) * weight
        torch.testing.assert_close(state["ema_model"][key], expected, rtol=1e-6, atol=1e-7)


def test_batches_visit_every_image_once_per_epoch():
    sampler = _BatchSampler(num_images=10, batch_size=4, seed=0)
    stream = torch.cat([sampler.next_batch() for _ in range(5)])  # 20 indices = 2 epochs
    assert sorted(stream[:10].tolist()) == list(range(10))
    assert sorted(stream[10:].tolist()) == list(range(10))
    assert not torch.equal(stream[:10], stream[10:])


def test_bf16_autocast_trains_on_cpu(tmp_path, images, diffusion):
    train(images, run_spec(config(steps=2, precision="bf16")), tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["precision"] == "bf16"
    assert all(
        v.dtype == torch.float32 for v in ema_weights(tmp_path).values()
    )  # weights stay float32


# --- exact resume ----------------------------------------------------------------------------
@pytest.mark.parametrize("interrupt_after", [4, 6])
def test_interrupted_run_resumes_to_bit_identical_weights(
    tmp_path, monkeypatch, images, diffusion, interrupt_after
):
    cfg = config(steps=7, checkpoint_every=3, log_every=2, snapshot_every=2, snapshot_count=2)
    train(images, run_spec(cfg), tmp_path / "whole")

    interrupted = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        fail_training_forward(patch, interrupt_after, raise_interrupted)
        with pytest.raises(Interrupted):
            train(images, run_spec(cfg), interrupted)
    assert not (interrupted / "model.pt").exists()
    train(images, run_spec(cfg), interrupted)

    assert_bit_identical(ema_weights(interrupted), ema_weights(tmp_path / "whole"))
    whole, resumed = final_checkpoint(tmp_path / "whole"), final_checkpoint(interrupted)
    assert_bit_identical(resumed["model"], whole["model"])
    assert resumed["optimizer"]["state"].keys() == whole["optimizer"]["state"].keys()
    for index, state in whole["optimizer"]["state"].items():
        assert_bit_identical(resumed["optimizer"]["state"][index], state)

    def without_time(rows):
        return [(r["step"], r["loss"], r["lr"]) for r in rows]

    assert without_time(read_log(interrupted)) == without_time(read_log(tmp_path / "whole"))
    with (
        np.load(interrupted / "snapshots.npz") as a,
        np.load(tmp_path / "whole" / "snapshots.npz") as b,
    ):
        np.testing.assert_array_equal(a["steps"], b["steps"])
        np.testing.assert_array_equal(a["images"], b["images"])
    record = json.loads((interrupted / "run.json").read_text())
    assert record["resumed_from_step"] == 3 * (interrupt_after // 3)


def test_finished_run_started_again_rewrites_the_same_outputs(tmp_path, images, diffusion):
    cfg = config(steps=4, snapshot_every=2, snapshot_count=2)
    train(images, run_spec(cfg), tmp_path)
    first_log, first_weights = read_log(tmp_path), ema_weights(tmp_path)
    clear_outputs(tmp_path)
    train(images, run_spec(cfg), tmp_path)
    assert read_log(tmp_path) == first_log
    assert_bit_identical(ema_weights(tmp_path), first_weights)
    assert (tmp_path / "snapshots.npz").exists()


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(
    tmp_path, images, diffusion, caplog
):
    cfg = config(steps=6, checkpoint_every=2)
    train(images, run_spec(cfg), tmp_path)
    expected = ema_weights(tmp_path)
    newest = tmp_path / "checkpoints" / "step-00000006.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a write cut short
    clear_outputs(tmp_path)

    with caplog.at_level(logging.WARNING, logger="ddpm.training"):
        train(images, run_spec(cfg), tmp_path)
    assert "step-00000006.pt" in caplog.text and "unreadable" in caplog.text
    assert json.loads((tmp_path / "run.json").read_text())["resumed_from_step"] == 4
    assert_bit_identical(ema_weights(tmp_path), expected)
    assert (tmp_path / "checkpoints" / "step-00000006.pt.unusable").exists()


def test_without_a_usable_checkpoint_training_starts_over(tmp_path, images, diffusion, caplog):
    cfg = config(steps=4, checkpoint_every=2)
    train(images, run_spec(cfg), tmp_path)
    expected = ema_weights(tmp_path)
    for path in (tmp_path / "checkpoints").glob("step-*.pt"):
        path.write_bytes(b"not a checkpoint")
    clear_outputs(tmp_path)

    with caplog.at_level(logging.WARNING, logger="ddpm.training"):
        train(images, run_spec(cfg), tmp_path)
    assert "starting over" in caplog.text
    assert json.loads((tmp_path / "run.json").read_text())["resumed_from_step"] is None
    assert_bit_identical(ema_weights(tmp_path), expected)


def test_checkpoint_of_a_different_run_is_not_resumed(tmp_path, images, diffusion, caplog):
    train(images, run_spec(config(steps=2, checkpoint_every=2)), tmp_path)
    clear_outputs(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ddpm.training"):
        train(
            images,
            run_spec(config(steps=2, checkpoint_every=2, learning_rate=5e-4)),
            tmp_path,
        )
    assert "different model, diffusion, training or data settings" in caplog.text
    assert json.loads((tmp_path / "run.json").read_text())["resumed_from_step"] is None


# --- failures ------------------------------------------------------------------------------
def test_non_finite_loss_names_the_step_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, images, diffusion
):
    fail_training_forward(monkeypatch, 3, lambda out: out * float("nan"))
    with pytest.raises(TrainingError, match="step 4") as info:
        train(images, run_spec(config(steps=6, checkpoint_every=2)), tmp_path)
    assert "step-00000002.pt" in str(info.value)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000002.pt"]
    assert torch.load(tmp_path / "checkpoints" / "step-00000002.pt", weights_only=True)["step"] == 2
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"precision": "fp16"}, "precision"),
        ({"snapshot_every": 0}, "snapshot_every"),
        ({"keep_checkpoints": 0}, "keep_checkpoints"),
    ],
)
def test_invalid_training_settings_are_named(overrides, key):
    with pytest.raises(ConfigError, match=key):
        config(**overrides).validate()


def test_training_config_from_dict_rejects_unknown_keys():
    assert TrainingConfig.from_dict({"steps": 3}) == TrainingConfig(steps=3)
    with pytest.raises(ConfigError, match="'epochs'"):
        TrainingConfig.from_dict({"steps": 3, "epochs": 2})


def test_bad_images_and_record_are_rejected_before_training(tmp_path, images, diffusion):
    with pytest.raises(ConfigError, match="uint8"):
        train(images.float(), run_spec(config()), tmp_path)
    with pytest.raises(ConfigError, match=r"expects \(1, 16, 16\)"):
        unet = UNetConfig(image_size=16, base_channels=8, attention_levels=())
        train(images, run_spec(config(), unet), tmp_path)
    with pytest.raises(ConfigError, match="'seed'.*reserved"):
        train(images, run_spec(config()), tmp_path, record={"seed": 3})
    assert not (tmp_path / "checkpoints").exists()


def test_load_model_explains_missing_corrupt_and_foreign_files(tmp_path, trained):
    with pytest.raises(ModelFileError, match="no model file"):
        load_model(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ModelFileError, match="not a ddpm model file"):
        load_model(foreign)
    content = torch.load(trained[0], weights_only=True)
    content["record"]["unet"]["base_channels"] = 16  # weights no longer fit the config
    mismatched = tmp_path / "mismatched.pt"
    torch.save(seal(content), mismatched)  # a consistent file, so the checksum passes
    with pytest.raises(ModelFileError, match="cannot be rebuilt"):
        load_model(mismatched)


# --- sampling ------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_generate_is_reproducible_from_its_seed(trained, sampler):
    path = trained[0]
    first = generate(path, 5, sampler=sampler, ddim_steps=4, batch_size=3, seed=7)
    assert first.shape == (5, 1, 8, 8) and first.dtype == torch.uint8
    assert torch.equal(
        first, generate(path, 5, sampler=sampler, ddim_steps=4, batch_size=3, seed=7)
    )
    assert not torch.equal(
        first, generate(path, 5, sampler=sampler, ddim_steps=4, batch_size=3, seed=8)
    )


def test_generate_matches_the_diffusion_sampler(trained):
    # One batch, seed 3: exactly what GaussianDiffusion.sample draws from the loaded EMA model.
    model, diffusion, _ = load_model(trained[0])
    expected = diffusion.sample(model, (4, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    expected = ((expected.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    generated = generate(trained[0], 4, batch_size=4, seed=3, device="cpu", precision="fp32")
    assert torch.equal(generated, expected)


def test_generate_rejects_bad_arguments(trained):
    with pytest.raises(ValueError, match="sampler"):
        generate(trained[0], 2, sampler="euler")
    with pytest.raises(ValueError, match="num_samples"):
        generate(trained[0], 0)


def test_image_grid_places_images_row_by_row():
    images = torch.arange(5, dtype=torch.uint8).reshape(5, 1, 1, 1).expand(5, 1, 2, 3).contiguous()
    grid = image_grid(images, nrow=3, padding=1, pad_value=255)
    assert grid.shape == (2 * (2 + 1) + 1, 3 * (3 + 1) + 1, 1)
    assert grid[1, 1, 0] == 0 and grid[1, 5, 0] == 1 and grid[1, 9, 0] == 2  # first row
    assert grid[4, 1, 0] == 3 and grid[4, 5, 0] == 4  # second row
    assert grid[4, 9, 0] == 255 and grid[0, 0, 0] == 255  # empty cell and padding
    colour = image_grid(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), nrow=2)
    assert colour.shape == (8, 14, 3)


def test_samples_and_png_round_trip(tmp_path):
    images = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8)
    save_samples(tmp_path / "s.npz", images)
    assert torch.equal(load_samples(tmp_path / "s.npz"), images)
    grid = image_grid(images, nrow=3)
    save_png(tmp_path / "g.png", grid)
    with Image.open(tmp_path / "g.png") as png:
        np.testing.assert_array_equal(np.asarray(png), grid)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match="not a readable samples file"):
        load_samples(tmp_path / "bad.npz")


def test_reconstruction_series_denoises_from_each_fraction_of_T(trained, images, tmp_path):
    originals = images[:3]
    series = reconstruction_series(
        trained[0], originals, [0.5, 0.1, 0.05, 1.0], seed=1, device="cpu"
    )
    assert series["t"].tolist() == [1, 5, 10]  # T = 10; 0.05 * T rounds to 0, raised to 1
    assert series["reconstructions"].shape == (3, 3, 1, 8, 8)
    np.testing.assert_array_equal(series["originals"], originals.numpy())
    # The first row is GaussianDiffusion.reconstruct from t = 1 with the seed's generator.
    model, diffusion, _ = load_model(trained[0])
    x = diffusion.reconstruct(
        model, to_model_range(originals), 1, generator=torch.Generator().manual_seed(1)
    )
    np.testing.assert_array_equal(series["reconstructions"][0], from_model_range(x).numpy())

    save_reconstruction(tmp_path / "r.npz", series)
    with np.load(tmp_path / "r.npz") as stored:
        assert sorted(stored.files) == ["originals", "reconstructions", "t"]
        np.testing.assert_array_equal(stored["reconstructions"], series["reconstructions"])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        reconstruction_series(trained[0], originals, [0.0, 0.5])
