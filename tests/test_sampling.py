"""Sampling's precision choice and grad mode."""

import logging

import pytest
import torch

from ddpm import runtime, sampling
from ddpm.sampling import generate, reconstruction_series
from ddpm.schedules import ScheduleSpec
from ddpm.spec import RunSpec
from ddpm.training.config import TrainingConfig
from ddpm.training.loop import train
from ddpm.unet_config import UNetConfig


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    images = torch.randint(
        0, 256, (16, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    spec = RunSpec(
        schedule=ScheduleSpec("linear", "linear", 6, {"beta_start": 1e-3, "beta_end": 0.2}),
        diffusion={},
        unet=UNetConfig(
            image_size=8,
            base_channels=8,
            channel_mults=(1, 2),
            attention_levels=(1,),
            num_groups=4,
        ),  # fmt: skip
        training=TrainingConfig(steps=2, batch_size=8, checkpoint_every=2, precision="fp32"),
    )
    with runtime.torch_threads(1):
        return train(images, spec, tmp_path_factory.mktemp("run"))


@pytest.fixture(autouse=True)
def fresh_choices(monkeypatch):
    monkeypatch.setattr(runtime, "_timed_choices", {})


def bf16_timed(monkeypatch, faster: bool) -> list:
    """A CPU with native bf16 whose timed pass says bf16 is (not) faster; returns the calls."""
    monkeypatch.setattr(runtime, "cpu_bf16_support", lambda: (True, "AVX512_BF16"))
    calls = []

    def seconds(model, inputs, device, precision):
        calls.append((model.training, tuple(inputs[0].shape)))
        return {"fp32": 1.0, "bf16": 0.5 if faster else 2.0}[precision]

    monkeypatch.setattr(runtime, "_seconds_per_pass", seconds)
    return calls


@pytest.mark.parametrize("faster", [True, False])
def test_auto_samples_in_the_precision_the_timed_pass_prefers(
    monkeypatch, model_path, caplog, faster
):
    calls = bf16_timed(monkeypatch, faster)
    with caplog.at_level(logging.INFO, logger="ddpm.sampling"):
        auto = generate(model_path, 5, batch_size=3, seed=1, device="cpu")
    expected = "bf16" if faster else "fp32"
    assert torch.equal(auto, generate(model_path, 5, batch_size=3, seed=1, precision=expected))
    # Timed as sampling runs the model: eval mode, a batch of the sampling batch size.
    assert calls == [(False, (3, 1, 8, 8))] * 2
    assert f"; {expected}" in caplog.text and "timed forward pass" in caplog.text


def test_auto_on_a_cpu_without_native_bf16_samples_in_fp32(monkeypatch, model_path):
    monkeypatch.setattr(runtime, "cpu_bf16_support", lambda: (False, "AVX2"))
    auto = generate(model_path, 4, batch_size=4, seed=2, device="cpu")
    assert torch.equal(auto, generate(model_path, 4, batch_size=4, seed=2, precision="fp32"))


def test_the_model_runs_under_inference_mode(monkeypatch, model_path):
    modes = []
    original = sampling.noise_predictor

    def recording_noise_predictor(*args):
        eps_model = original(*args)

        def recorded(x, t):
            modes.append(torch.is_inference_mode_enabled())
            return eps_model(x, t)

        return recorded

    monkeypatch.setattr(sampling, "noise_predictor", recording_noise_predictor)
    images = generate(model_path, 2, batch_size=2, precision="fp32")
    reconstruction_series(model_path, images, [0.5], precision="fp32")
    assert modes and all(modes)
    images += 1  # what the caller gets back is an ordinary tensor, not an inference tensor


def test_more_ddim_steps_than_T_is_an_error_naming_both(model_path):
    with pytest.raises(ValueError, match=r"ddim_steps=7 exceeds T=6 .* ddim_steps <= 6"):
        generate(model_path, 2, sampler="ddim", ddim_steps=7, device="cpu", precision="fp32")


@pytest.mark.parametrize(
    "count, nrow, size",
    [(16, None, (4 * 10 + 2, 4 * 10 + 2)), (8, None, (2 * 10 + 2, 4 * 10 + 2)), (5, 5, (52, 12))],
)
def test_sample_grid_shows_count_images_as_square_as_they_allow(tmp_path, count, nrow, size):
    from PIL import Image

    images = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8)
    path = tmp_path / "grid.png"
    assert sampling.save_sample_grid(path, images, count, nrow=nrow) == count
    with Image.open(path) as png:
        assert png.size == size  # 8-pixel images with 2 pixels of padding around each
    with pytest.raises(ValueError, match="no images to draw"):
        sampling.save_sample_grid(path, images, 0)


def test_sampling_killed_between_batches_resumes_to_the_same_images(model_path, tmp_path):
    """A job killed after some batches (here: the fourth batch fails) keeps what it finished;
    started again it draws only the rest, and ends with an uninterrupted run's images."""
    settings = dict(batch_size=2, seed=3, device="cpu", precision="fp32")
    uninterrupted = generate(model_path, 7, **settings)
    progress = tmp_path / "sampling"
    real_batch, calls = sampling._sample_batch, []

    def failing_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")  # as a signal ends the process
        return real_batch(*args, **kwargs)

    sampling._sample_batch = failing_batch
    try:
        with pytest.raises(KeyboardInterrupt):
            generate(model_path, 7, progress_dir=progress, **settings)
    finally:
        sampling._sample_batch = real_batch
    assert sorted(p.name for p in progress.iterdir()) == [f"batch-0000{i}.pt" for i in range(3)]

    drawn = []

    def counting_batch(*args, **kwargs):
        drawn.append(1)
        return real_batch(*args, **kwargs)

    sampling._sample_batch = counting_batch
    try:
        resumed = generate(model_path, 7, progress_dir=progress, **settings)
    finally:
        sampling._sample_batch = real_batch
    assert len(drawn) == 1, "only the last batch (of 4) should be drawn again"
    assert torch.equal(resumed, uninterrupted)
    sampling.clear_progress(progress)
    assert not progress.exists()


def test_kept_batches_of_other_settings_or_damaged_are_not_resumed(model_path, tmp_path):
    progress = tmp_path / "sampling"
    settings = dict(batch_size=2, device="cpu", precision="fp32")
    generate(model_path, 4, seed=0, progress_dir=progress, **settings)
    # Another seed: the kept batches are of other noise, and are redrawn.
    other_seed = generate(model_path, 4, seed=1, progress_dir=progress, **settings)
    assert torch.equal(other_seed, generate(model_path, 4, seed=1, **settings))
    # A batch file cut short (a kill while it was written): it and all after it are redrawn.
    (progress / "batch-00000.pt").write_bytes(b"truncated")
    again = generate(model_path, 4, seed=1, progress_dir=progress, **settings)
    assert torch.equal(again, other_seed)
