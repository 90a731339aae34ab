"""The schedule options every schedule takes: simple diffusion's log-SNR shift and Lin et al.'s
zero-terminal-SNR rescale, checked against their defining formulas and against diffusers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ddpm import ConfigError
from ddpm.diffusion import GaussianDiffusion
from ddpm.schedules import make_schedule
from ddpm.workflow.config_check import check_study_config
from ddpm.workflow.config_load import resolve_config

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"

# The study's schedules: linear with the 1000/T rescale, cosine clipped as in report 003
# (beta_min, beta_max) and as Nichol & Dhariwal (beta_max only), report 003's sigmoid.
BASES = [
    ("linear", {"beta_start": 1.0e-5, "beta_end": 0.01, "rescale_to_T": True}),
    ("linear", {"beta_start": 1.0e-4, "beta_end": 0.02}),
    ("cosine", {"s": 0.002, "beta_min": 1.0e-5, "beta_max": 0.9999}),
    ("cosine", {"s": 0.008, "beta_max": 0.999}),
    ("sigmoid", {"beta_start": 1.0e-5, "beta_end": 0.01, "rescale_to_T": True}),
]


def one_minus_alpha_bar(schedule) -> np.ndarray:
    """1 - alpha_bar_t without the cancellation of 1 - alpha_bar near alpha_bar = 1."""
    return -np.expm1(np.cumsum(np.log1p(-schedule.betas)))


def logit(schedule) -> np.ndarray:
    return np.log(schedule.alpha_bar) - np.log(one_minus_alpha_bar(schedule))


@pytest.mark.parametrize("T", [20, 200, 1000])
@pytest.mark.parametrize("name, params", BASES)
@pytest.mark.parametrize("shift", [-2 * math.log(2), -1.0, 2.5])
def test_shift_adds_a_constant_to_logit_alpha_bar(name, params, T, shift):
    base = make_schedule(name, T, **params)
    shifted = make_schedule(name, T, **params, shift=shift)
    np.testing.assert_allclose(logit(shifted), logit(base) + shift, rtol=0, atol=1e-11)
    # the same, from sigmoid(logit(a) + s) = a e^s / (1 - a + a e^s) written out
    a, rest = base.alpha_bar, one_minus_alpha_bar(base)
    expected = a * math.exp(shift) / (rest + a * math.exp(shift))
    np.testing.assert_allclose(shifted.alpha_bar, expected, rtol=1e-11)
    np.testing.assert_allclose(
        one_minus_alpha_bar(shifted), rest / (rest + a * math.exp(shift)), rtol=1e-11
    )


def test_shift_is_not_clipped_again_where_cosine_was_clipped():
    # At T = 10 cosine's last beta is clipped to beta_max; the shift acts on the alpha_bar of
    # the clipped betas, and its own betas (the last above beta_max here) stay as they are.
    base = make_schedule("cosine", 10, s=0.008, beta_max=0.999)
    assert base.betas[-1] == 0.999
    shifted = make_schedule("cosine", 10, s=0.008, beta_max=0.999, shift=-3.0)
    assert shifted.betas[-1] > 0.999
    np.testing.assert_allclose(logit(shifted), logit(base) - 3.0, rtol=0, atol=1e-11)


@pytest.mark.parametrize("name, params", BASES)
def test_options_off_keep_the_schedule_and_its_record(name, params):
    base = make_schedule(name, 400, **params)
    explicit = make_schedule(name, 400, **params, shift=0.0, zero_terminal_snr=False)
    assert np.array_equal(explicit.betas, base.betas)
    # Options not given are not recorded: records of unshifted runs stay as they were.
    assert "shift" not in base.params and "zero_terminal_snr" not in base.params
    assert explicit.params["shift"] == 0.0


@pytest.mark.parametrize("T", [20, 1000])
@pytest.mark.parametrize("name, params", BASES)
def test_zero_terminal_snr_matches_diffusers(name, params, T):
    scheduling = pytest.importorskip(
        "diffusers.schedulers.scheduling_ddpm",
        reason="diffusers is the reference for the rescale (pip install -e '.[bench]')",
    )
    base = make_schedule(name, T, **params)
    rescaled = make_schedule(name, T, **params, zero_terminal_snr=True)
    reference = scheduling.rescale_zero_terminal_snr(torch.tensor(base.betas, dtype=torch.float64))
    np.testing.assert_allclose(rescaled.betas, reference.numpy(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("name, params", BASES)
def test_zero_terminal_snr_is_lin_et_al_algorithm_1(name, params):
    base = make_schedule(name, 200, **params)
    rescaled = make_schedule(name, 200, **params, zero_terminal_snr=True)
    root = np.sqrt(base.alpha_bar)
    expected = (root - root[-1]) * root[0] / (root[0] - root[-1])
    np.testing.assert_allclose(np.sqrt(rescaled.alpha_bar), expected, rtol=1e-12, atol=1e-15)
    assert rescaled.betas[-1] == 1.0 and rescaled.alpha_bar_T == 0.0
    assert rescaled.log_snr[-1] == -np.inf and rescaled.prior_kl_bits_per_dim() == 0.0


def test_shift_comes_before_the_rescale():
    both = make_schedule("cosine", 100, shift=-1.0, zero_terminal_snr=True)
    shifted = make_schedule("cosine", 100, shift=-1.0)
    root = np.sqrt(shifted.alpha_bar)
    expected = (root - root[-1]) * root[0] / (root[0] - root[-1])
    np.testing.assert_allclose(np.sqrt(both.alpha_bar), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shift", [10.5, -11.0])
def test_shift_out_of_range_is_named(shift):
    with pytest.raises(ConfigError, match=r"shift = .* out of range.*\[-10, 10\]"):
        make_schedule("cosine", 100, shift=shift)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"shift": "-1"}, "parameter shift must be a number"),
        ({"zero_terminal_snr": 1}, "parameter zero_terminal_snr must be true or false"),
        ({"shfit": -1.0}, r"no parameter 'shfit'.*\['shift', 'zero_terminal_snr'\]"),
    ],
)
def test_ill_typed_or_misspelled_options_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        make_schedule("linear", 100, **params)


@pytest.mark.parametrize("prediction", ["eps", "x0", "mu"])
def test_a_zero_terminal_snr_schedule_is_trained_only_to_predict_v(prediction):
    # At alpha_bar_T = 0 only v gives both x_0 and the noise at t = T (Lin et al. 2024).
    schedule = make_schedule("cosine", 50, zero_terminal_snr=True)
    with pytest.raises(ValueError, match="zero terminal SNR.*'v'"):
        GaussianDiffusion(schedule, prediction=prediction)


def test_a_v_predicting_model_trains_and_samples_on_a_zero_terminal_snr_schedule():
    schedule = make_schedule("cosine", 20, zero_terminal_snr=True)
    diffusion = GaussianDiffusion(schedule, prediction="v")
    generator = torch.Generator().manual_seed(0)

    def model(x, t):  # any finite network output
        return 0.1 * x + 0.01 * t.view(-1, 1, 1, 1).to(x.dtype)

    x0 = torch.rand(4, 1, 8, 8, generator=generator) * 2 - 1
    assert torch.isfinite(diffusion.training_loss(model, x0, generator=generator))
    # t = T is drawn: x_T is pure noise, and the step from it is finite.
    assert torch.isfinite(diffusion.sample(model, (2, 1, 8, 8), generator=generator)).all()
    ddim = diffusion.ddim_sample(model, (2, 1, 8, 8), steps=5, generator=generator)
    assert torch.isfinite(ddim).all()
    bound = diffusion.variational_bound(model, x0, generator=generator)
    assert all(torch.isfinite(value).all() for value in bound.values())


def _default_config(**changes):
    config = resolve_config(DEFAULT_CONFIG, [])
    config["schedules"]["cosine"]["params"].update(changes)
    return config


def test_config_check_names_an_out_of_range_shift():
    problems = check_study_config(_default_config(shift=12.0))
    assert any("schedules.cosine" in p and "shift = 12.0 is out of range" in p for p in problems)


def test_config_check_refuses_to_train_a_zero_terminal_snr_schedule_to_predict_the_noise():
    problems = check_study_config(_default_config(zero_terminal_snr=True))
    assert any("zero terminal SNR" in p and "'v'" in p for p in problems), problems
    config = _default_config(zero_terminal_snr=True)
    config["schedules"]["cosine"]["diffusion"] = {"prediction": "v"}
    assert check_study_config(config) == []


def test_config_check_accepts_shifted_and_rescaled_closeness_schedules():
    config = _default_config(shift=-1.386)
    config["analysis"]["closeness"]["schedules"]["cosine"]["params"]["zero_terminal_snr"] = True
    assert check_study_config(config) == []


def test_schedule_command_takes_the_options(tmp_path):
    from ddpm.cli import main

    out = tmp_path / "shifted.csv"
    args = ["schedule", "cosine", "--T", "50", "--param", "shift=-1.386", "--out", str(out)]
    assert main(args) == 0
    expected = make_schedule("cosine", 50, shift=-1.386)
    np.testing.assert_allclose(pd.read_csv(out)["alpha_bar"], expected.alpha_bar, rtol=1e-12)
    assert main(["schedule", "cosine", "--T", "50", "--param", "shift=12"]) == 1


def test_train_command_records_the_shift(tmp_path):
    from ddpm.cli import main

    data = tmp_path / "digits.npz"
    assert main(["prepare-data", "digits", str(data), "--image-size", "8"]) == 0
    run = tmp_path / "run"
    status = main(
        [
            "train", str(data), str(run), "--schedule", "cosine", "--T", "10",
            "--schedule-param", "shift=-1.386", "--base-channels", "8", "--channel-mults", "1,2",
            "--attention-levels", "1", "--num-groups", "4", "--steps", "1", "--batch-size", "4",
            "--device", "cpu",
        ]
    )  # fmt: skip
    assert status == 0
    record = json.loads((run / "run.json").read_text())
    assert record["schedule"]["params"]["shift"] == -1.386
