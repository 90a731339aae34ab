"""Noise schedules checked against independent references (papers' formulas and report 003's code)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm import ConfigError
from ddpm.beta_formulas import schedule_parameters
from ddpm.schedules import (
    SCHEDULES,
    NoiseSchedule,
    cosine_betas,
    linear_betas,
    make_schedule,
    sigmoid_alpha_bar_betas,
    sigmoid_betas,
)


# --- references -----------------------------------------------------------------------------
# Report 003's code, copied verbatim (torch.linspace / sigmoid / cos / clip).
def report003_sigmoid_beta_schedule(timesteps, start, end):
    betas = torch.linspace(-10, 10, timesteps)
    return torch.sigmoid(betas) * (end - start)


def report003_cosine_beta_schedule(timesteps, s):
    steps = timesteps + 1
    x = torch.linspace(0, timesteps, steps)
    alphas_cumprod = torch.cos(((x / timesteps) + s) / (1 + s) * torch.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0.00001, 0.9999)


def in_float64(fn, *args):
    """Run torch reference code with float64 as the default dtype.

    The report ran it in float32, whose cancellation in 1 - ratio moves late cosine betas by
    up to 0.5 % at T=800; in float64 the reference and the library agree to rounding.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return fn(*args).numpy()
    finally:
        torch.set_default_dtype(previous)


def nichol_cosine_betas(T, max_beta=0.999):
    """improved-diffusion's betas_for_alpha_bar with the cosine alpha_bar (s = 0.008)."""

    def alpha_bar(u):
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array(
        [min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    )


def chen_sigmoid_schedule(t, start=-3, end=3, tau=1.0, clip_min=1e-9):
    """Chen 2023, Algorithm 1: gamma(t) for continuous t in [0, 1] (gamma plays alpha_bar)."""

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    v_start = sigmoid(start / tau)
    v_end = sigmoid(end / tau)
    output = sigmoid((t * (end - start) + start) / tau)
    output = (v_end - output) / (v_end - v_start)
    return min(max(output, clip_min), 1.0)


def chen_discrete_betas(T, start=-3, end=3, tau=1.0, beta_max=0.999):
    """alpha_bar_t = gamma(t / T), beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}."""
    gammas = [chen_sigmoid_schedule(i / T, start, end, tau) for i in range(T + 1)]
    return np.array([min(1 - gammas[i] / gammas[i - 1], beta_max) for i in range(1, T + 1)])


# --- the schedules ---------------------------------------------------------------------------
def test_linear_endpoints_and_even_spacing():
    betas = linear_betas(1000)
    assert betas[0] == pytest.approx(1e-4, rel=1e-12)
    assert betas[-1] == pytest.approx(0.02, rel=1e-12)
    np.testing.assert_allclose(np.diff(betas), (0.02 - 1e-4) / 999, rtol=1e-9)


@pytest.mark.parametrize("T", [50, 100, 200, 400, 800])
def test_linear_rescale_to_T_scales_both_ends_by_1000_over_T(T):
    # Report 003's constants: start = beta_min * 1000 / T, end = beta_max * 1000 / T.
    betas = linear_betas(T, beta_start=1e-5, beta_end=0.01, rescale_to_T=True)
    reference = in_float64(torch.linspace, 1e-5 * 1000 / T, 0.01 * 1000 / T, T)
    np.testing.assert_allclose(betas, reference, rtol=1e-12)
    assert betas[0] == pytest.approx(1e-5 * 1000 / T)
    assert betas[-1] == pytest.approx(0.01 * 1000 / T)


@pytest.mark.parametrize("T", [50, 800])
def test_cosine_equals_report003_code(T):
    reference = in_float64(report003_cosine_beta_schedule, T, 0.002)
    ours = cosine_betas(T, s=0.002, beta_min=1e-5, beta_max=0.9999)
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("T", [50, 1000, 4000])
def test_cosine_default_equals_nichol_dhariwal(T):
    reference = nichol_cosine_betas(T)
    np.testing.assert_allclose(cosine_betas(T), reference, rtol=1e-10, atol=1e-15)
    assert cosine_betas(T).max() == pytest.approx(0.999)
    schedule = make_schedule("cosine", T)
    # Nichol & Dhariwal's alpha_bar(t) = f(t) / f(0) until the 0.999 clip bites at the very end.
    u = np.arange(1, T + 1) / T
    f = np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(schedule.alpha_bar[:-1], f[:-1], rtol=1e-9)


@pytest.mark.parametrize("T", [50, 200, 800])
def test_sigmoid_without_start_is_report003_code_verbatim(T):
    start, end = 1e-5 * 1000 / T, 0.01 * 1000 / T
    reference = in_float64(report003_sigmoid_beta_schedule, T, start, end)
    ours = sigmoid_betas(T, beta_start=1e-5, beta_end=0.01, rescale_to_T=True, add_start=False)
    np.testing.assert_allclose(ours, reference, rtol=1e-12)


@pytest.mark.parametrize("T", [50, 800])
def test_sigmoid_with_start_adds_beta_start(T):
    start, end = 1e-5 * 1000 / T, 0.01 * 1000 / T
    reference = in_float64(report003_sigmoid_beta_schedule, T, start, end) + start
    ours = sigmoid_betas(T, beta_start=1e-5, beta_end=0.01, rescale_to_T=True)
    np.testing.assert_allclose(ours, reference, rtol=1e-12)
    # The curve then spans [start, end] up to the sigmoid's tails at +-10 (4.5e-5 of the range).
    assert ours[0] == pytest.approx(start, abs=5e-5 * (end - start))
    assert ours[-1] == pytest.approx(end, abs=5e-5 * (end - start))


@pytest.mark.parametrize(("T", "start", "end", "tau"), [(50, -3, 3, 1.0), (1000, 0, 3, 0.7)])
def test_sigmoid_alpha_bar_equals_chen_2023(T, start, end, tau):
    reference = chen_discrete_betas(T, start, end, tau)
    ours = sigmoid_alpha_bar_betas(T, start=start, end=end, tau=tau)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-15)
    schedule = make_schedule("sigmoid_alpha_bar", T, start=start, end=end, tau=tau)
    gammas = [chen_sigmoid_schedule(i / T, start, end, tau) for i in range(1, T)]
    np.testing.assert_allclose(schedule.alpha_bar[:-1], gammas, rtol=1e-9)


# --- derived quantities ------------------------------------------------------------------------
@pytest.fixture(params=["linear", "cosine", "sigmoid", "sigmoid_alpha_bar"])
def schedule(request) -> NoiseSchedule:
    params = {"rescale_to_T": True} if request.param in ("linear", "sigmoid") else {}
    return make_schedule(request.param, 100, **params)


def test_alpha_bar_is_cumulative_product(schedule):
    np.testing.assert_allclose(schedule.alphas, 1 - schedule.betas, rtol=0, atol=0)
    np.testing.assert_allclose(schedule.alpha_bar, np.cumprod(1 - schedule.betas), rtol=1e-12)
    assert schedule.alpha_bar_prev[0] == 1.0
    np.testing.assert_array_equal(schedule.alpha_bar_prev[1:], schedule.alpha_bar[:-1])
    assert schedule.alpha_bar_T == schedule.alpha_bar[-1]


def test_posterior_variance_and_log_snr(schedule):
    betas = schedule.betas
    expected = [0.0]
    for t in range(2, schedule.T + 1):  # 1-based, literally as in Ho et al. eq. 7
        ab_t = np.prod(1 - betas[:t])
        ab_prev = np.prod(1 - betas[: t - 1])
        expected.append((1 - ab_prev) / (1 - ab_t) * betas[t - 1])
    np.testing.assert_allclose(schedule.posterior_variance, expected, rtol=1e-10, atol=0)
    assert schedule.posterior_variance[0] == 0.0
    snr = np.cumprod(1 - betas) / (1 - np.cumprod(1 - betas))
    np.testing.assert_allclose(schedule.log_snr, np.log(snr), rtol=1e-9, atol=1e-9)
    assert np.all(np.diff(schedule.log_snr) < 0)


def test_kl_to_standard_normal_matches_torch_distributions(schedule):
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 8, 8, generator=generator, dtype=torch.float64) * 2 - 1
    alpha_bar = torch.tensor(schedule.alpha_bar).reshape(-1, 1, 1, 1)
    q = torch.distributions.Normal(
        alpha_bar.sqrt() * x0, (1 - alpha_bar).sqrt().expand(-1, 3, 8, 8)
    )
    standard = torch.distributions.Normal(torch.zeros(()), torch.ones(()))
    kl_nats = torch.distributions.kl_divergence(q, standard)  # (T, 3, 8, 8), per pixel
    expected_bits = kl_nats.mean(dim=(1, 2, 3)).numpy() / math.log(2)
    second_moment = float((x0**2).mean())
    np.testing.assert_allclose(
        schedule.kl_to_standard_normal(second_moment), expected_bits, rtol=1e-9
    )
    assert schedule.prior_kl_bits_per_dim(second_moment) == pytest.approx(expected_bits[-1])


def test_to_frame_and_describe():
    schedule = make_schedule("linear", 100, rescale_to_T=True)
    frame = schedule.to_frame()
    assert list(frame["t"]) == list(range(1, 101))
    np.testing.assert_array_equal(frame["alpha_bar"], schedule.alpha_bar)
    assert schedule.describe() == {
        "beta_schedule": "linear",
        "T": 100,
        "params": schedule_parameters("linear") | {"rescale_to_T": True},
    }


def test_caller_array_stays_writable_and_schedule_is_frozen():
    betas = np.linspace(1e-3, 0.2, 10)
    schedule = NoiseSchedule(betas)
    betas[0] = 0.5  # the caller's array is theirs to change ...
    assert schedule.betas[0] == pytest.approx(1e-3)  # ... without changing the schedule
    with pytest.raises(ValueError):
        schedule.betas[0] = 0.5


# --- errors name what is wrong ------------------------------------------------------------------
@pytest.mark.parametrize("T", [0, -5])
def test_T_below_one_is_rejected(T):
    with pytest.raises(ConfigError, match=r"T must be a positive integer.*number of diffusion"):
        make_schedule("linear", T)


@pytest.mark.parametrize("T", [10.0, "100", True])
def test_T_not_an_integer_is_rejected(T):
    with pytest.raises(ConfigError, match="T must be a positive integer"):
        make_schedule("cosine", T)


def test_numpy_integer_T_is_accepted():
    assert make_schedule("cosine", np.int64(10)).T == 10


def test_beta_of_one_is_rejected_with_step_and_parameters():
    # Linear rescaled at T = 20: beta_end = 0.02 * 1000 / 20 = 1, which destroys x_0 in one step.
    with pytest.raises(ConfigError) as info:
        make_schedule("linear", 20, rescale_to_T=True)
    message = str(info.value)
    assert "beta_20 = 1 lies outside (0, 1)" in message
    assert "'linear'" in message and "T=20" in message and "'rescale_to_T': True" in message


def test_negative_beta_is_rejected():
    with pytest.raises(ConfigError, match=r"beta_1 = -0\.001 lies outside \(0, 1\)"):
        make_schedule("linear", 10, beta_start=-1e-3)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_parameter_is_rejected_by_name(value):
    with pytest.raises(ConfigError, match="parameter beta_end must be finite"):
        make_schedule("sigmoid", 10, beta_end=value)


def test_non_finite_beta_is_rejected():
    with pytest.raises(ConfigError, match=r"beta_2 is not finite \(nan\)"):
        NoiseSchedule(np.array([0.1, np.nan, 0.2]))


def test_string_parameter_is_rejected_by_name():
    # YAML reads 1e-4 without a dot as the string "1e-4".
    with pytest.raises(ConfigError, match=r"parameter beta_start must be a number.*'1e-4'"):
        make_schedule("linear", 10, beta_start="1e-4")
    with pytest.raises(ConfigError, match="parameter rescale_to_T must be true or false"):
        make_schedule("linear", 10, rescale_to_T="yes")


def test_unknown_schedule_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown beta_schedule 'quadratic'.*'cosine'"):
        make_schedule("quadratic", 10)


def test_unknown_parameter_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"'cosine' has no parameter 'beta_end'.*\['beta_max'"):
        make_schedule("cosine", 10, beta_end=0.02)


def test_invalid_shape_parameters_are_named():
    with pytest.raises(ConfigError, match="s must be >= 0"):
        make_schedule("cosine", 10, s=-0.1)
    with pytest.raises(ConfigError, match="tau must be > 0"):
        make_schedule("sigmoid_alpha_bar", 10, tau=0.0)
    with pytest.raises(ConfigError, match=r"end \(-3\) must be greater than start \(3\)"):
        make_schedule("sigmoid_alpha_bar", 10, start=3, end=-3)


def test_every_registered_schedule_builds_at_every_studied_T():
    for name in SCHEDULES:
        params = {"rescale_to_T": True} if "rescale_to_T" in schedule_parameters(name) else {}
        for T in (50, 100, 200, 400, 800):
            schedule = make_schedule(name, T, **params)
            assert schedule.T == T and np.all(np.diff(schedule.alpha_bar) < 0)
