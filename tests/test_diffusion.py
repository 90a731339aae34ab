"""The diffusion process checked against the papers' formulas, computed independently here.

References: Ho et al. 2020 (eq. 4 and 7, Algorithm 2, eq. 13), Song et al. 2021 (DDIM, eq. 12
and 16). Every reference below is written from the paper in float64 from the raw betas, not
from the library's precomputed coefficients.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm.diffusion import (
    GaussianDiffusion,
    _discretized_gaussian_log_likelihood,
    _normal_kl,
    from_model_range,
    to_model_range,
)
from ddpm.schedules import make_schedule

T = 10
SCHEDULE = make_schedule("linear", T, beta_start=1e-3, beta_end=0.4)
BETAS = SCHEDULE.betas.copy()
ALPHA_BAR = np.cumprod(1.0 - BETAS)


def alpha_bar(t: int) -> float:
    """alpha_bar_t for t = 0..T (alpha_bar_0 = 1)."""
    return 1.0 if t == 0 else float(ALPHA_BAR[t - 1])


def at(values: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t - 1] per row, as float64, shaped to broadcast against ``like``."""
    picked = torch.tensor(values, dtype=torch.float64)[t.long() - 1]
    return picked.reshape(-1, *([1] * (like.dim() - 1)))


def toy_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed deterministic 'noise predictor' that depends on both x_t and t."""
    return 0.3 * torch.tanh(x) + 0.05 * t.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1))) / T


def oracle_for(target: torch.Tensor):
    """The noise predictor that is exact when every x_0 equals ``target`` (broadcast per row)."""

    def model(x_t, t):
        ab = at(ALPHA_BAR, t, x_t)
        return (x_t.double() - ab.sqrt() * target.double()) / (1 - ab).sqrt()

    return model


class Recorder:
    """Wraps a model and keeps every (x_t, t) it was called with."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, x_t, t):
        self.calls.append((x_t.detach().clone(), t.detach().clone()))
        return self.model(x_t, t)


def bayes_posterior(x0: float, x_t: float, t: int) -> tuple[float, float]:
    """q(x_{t-1} | x_t, x_0) as the product q(x_t | x_{t-1}) q(x_{t-1} | x_0), t >= 2.

    As a function of x_{t-1}, q(x_t | x_{t-1}) = N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) is a
    Gaussian with mean x_t / sqrt(alpha_t) and precision alpha_t / beta_t; precisions add and
    means are precision-weighted.
    """
    beta, alpha, ab_prev = BETAS[t - 1], 1 - BETAS[t - 1], alpha_bar(t - 1)
    precision = 1 / (1 - ab_prev) + alpha / beta
    mean = (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(alpha) * x_t / beta) / precision
    return mean, 1 / precision


def algorithm2(model, x_T: torch.Tensor, sigmas: np.ndarray, z: dict[int, torch.Tensor]):
    """Ho et al. Algorithm 2, literally: x_{t-1} = 1/sqrt(a_t)(x_t - b_t/sqrt(1-ab_t) eps) + s_t z."""
    x = x_T.double()
    for t in range(T, 0, -1):
        z_t = z[t].double() if t > 1 else torch.zeros_like(x)
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long)).double()
        beta, alpha = BETAS[t - 1], 1 - BETAS[t - 1]
        x = (
            1 / math.sqrt(alpha) * (x - beta / math.sqrt(1 - alpha_bar(t)) * eps)
            + sigmas[t - 1] * z_t
        )
    return x


def draw_sampler_noise(seed: int, shape) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """x_T, then z_T, ..., z_2 in the order an ancestral sampler consumes them."""
    generator = torch.Generator().manual_seed(seed)
    x_T = torch.randn(shape, generator=generator)
    return x_T, {t: torch.randn(shape, generator=generator) for t in range(T, 1, -1)}


# --- forward process ---------------------------------------------------------------------------
@pytest.mark.parametrize("t", [1, 4, T])
def test_closed_form_and_step_by_step_forward_give_the_same_distribution(t):
    n = 20_000
    x0 = torch.full((n, 1, 1, 1), 0.6, dtype=torch.float64)
    diffusion = GaussianDiffusion(SCHEDULE)
    closed = diffusion.q_sample(x0, t, generator=torch.Generator().manual_seed(1)).flatten()
    chain = diffusion.q_chain(x0, generator=torch.Generator().manual_seed(2), keep=[t])[t].flatten()
    mean, var = math.sqrt(alpha_bar(t)) * 0.6, 1 - alpha_bar(t)  # Ho et al. eq. 4
    # Five standard errors: the mean's is sqrt(var / n), a Gaussian variance's var sqrt(2 / (n - 1)).
    for samples in (closed, chain):
        assert abs(samples.mean().item() - mean) < 5 * math.sqrt(var / n)
        assert abs(samples.var().item() - var) < 5 * var * math.sqrt(2 / (n - 1))
    assert abs(closed.mean().item() - chain.mean().item()) < 5 * math.sqrt(2 * var / n)


def test_q_chain_keeps_requested_steps_and_x0():
    x0 = torch.zeros(2, 1, 3, 3)
    out = GaussianDiffusion(SCHEDULE).q_chain(x0, generator=torch.Generator().manual_seed(0))
    assert sorted(out) == list(range(T + 1))
    assert torch.equal(out[0], x0) and out[T].shape == x0.shape


def test_q_posterior_is_bayes_rule():
    diffusion = GaussianDiffusion(SCHEDULE)
    grid = np.linspace(-10.0, 10.0, 1_000_001)  # every posterior here is within +-6 sd
    for t, x0, x_t in [(2, 0.5, 0.3), (5, -0.8, 0.1), (T, 0.2, -1.5)]:
        mean, var, log_var = diffusion.q_posterior(
            torch.tensor([[x0]], dtype=torch.float64), torch.tensor([[x_t]], dtype=torch.float64), t
        )
        expected_mean, expected_var = bayes_posterior(x0, x_t, t)
        assert mean.item() == pytest.approx(expected_mean, rel=1e-10)
        assert var.item() == pytest.approx(expected_var, rel=1e-10)
        assert log_var.item() == pytest.approx(math.log(expected_var), rel=1e-10)
        # And numerically: normalise the product of the two densities on a fine grid.
        beta, ab_prev = BETAS[t - 1], alpha_bar(t - 1)
        log_density = -0.5 * (grid - math.sqrt(ab_prev) * x0) ** 2 / (1 - ab_prev)
        log_density -= 0.5 * (x_t - math.sqrt(1 - beta) * grid) ** 2 / beta
        weights = np.exp(log_density - log_density.max())
        weights /= weights.sum()
        grid_mean = float((weights * grid).sum())
        assert mean.item() == pytest.approx(grid_mean, abs=1e-8)
        assert var.item() == pytest.approx(
            float((weights * (grid - grid_mean) ** 2).sum()), rel=1e-6
        )


def test_q_posterior_at_t1_is_a_point_mass_on_x0():
    x0, x_1 = torch.tensor([[0.25]]), torch.tensor([[0.9]])
    mean, var, _ = GaussianDiffusion(SCHEDULE).q_posterior(x0, x_1, 1)
    assert mean.item() == pytest.approx(0.25, abs=1e-6) and var.item() == 0.0


def test_predict_x0_from_true_noise_inverts_q_sample():
    generator = torch.Generator().manual_seed(3)
    x0 = torch.rand(6, 1, 4, 4, generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    t = torch.tensor([1, 2, 3, 5, 9, T])
    diffusion = GaussianDiffusion(SCHEDULE)
    x_t = diffusion.q_sample(x0, t, noise)
    expected = at(ALPHA_BAR, t, x0).sqrt() * x0 + (1 - at(ALPHA_BAR, t, x0)).sqrt() * noise
    torch.testing.assert_close(x_t, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(diffusion.predict_x0_from_eps(x_t, t, noise), x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(diffusion.predict_eps_from_x0(x_t, t, x0), noise, rtol=0, atol=1e-10)


def test_zero_based_or_out_of_range_timesteps_are_rejected():
    diffusion = GaussianDiffusion(SCHEDULE)
    x0 = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match=r"must be in 1\.\.10 \(1-based"):
        diffusion.q_sample(x0, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"must be in 1\.\.10"):
        diffusion.q_sample(x0, T + 1)


# --- training loss -----------------------------------------------------------------------------
def test_training_loss_of_the_true_noise_is_zero():
    generator = torch.Generator().manual_seed(4)
    x0 = torch.rand(64, 1, 4, 4, generator=generator) * 2 - 1
    loss = GaussianDiffusion(SCHEDULE).training_loss(oracle_for(x0), x0, generator=generator)
    assert 0 <= loss.item() < 1e-9


@pytest.mark.parametrize("kind", ["mse", "smooth_l1"])
def test_training_loss_matches_its_formula_for_a_fixed_model(kind):
    generator = torch.Generator().manual_seed(5)
    x0 = torch.rand(4000, 1, 1, 2, generator=generator) * 2 - 1
    model = Recorder(toy_model)
    loss = GaussianDiffusion(SCHEDULE, loss=kind).training_loss(model, x0, generator=generator)
    [(x_t, t)] = model.calls
    assert t.dtype == torch.long and t.shape == (4000,) and set(t.tolist()) == set(range(1, T + 1))
    # The noise that produced x_t, recovered from eq. 4 in float64.
    ab = at(ALPHA_BAR, t, x0)
    noise = (x_t.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()
    assert abs(noise.mean().item()) < 5 / math.sqrt(8000) and abs(noise.std().item() - 1) < 0.05
    diff = toy_model(x_t, t).double() - noise
    if kind == "mse":
        expected = (diff**2).mean()
    else:  # Huber with threshold 1
        expected = torch.where(diff.abs() < 1, 0.5 * diff**2, diff.abs() - 0.5).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_training_loss_is_reproducible_from_a_seed():
    x0 = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(6)) * 2 - 1
    diffusion = GaussianDiffusion(SCHEDULE)

    def loss(seed):
        return diffusion.training_loss(toy_model, x0, generator=torch.Generator().manual_seed(seed))

    assert loss(7).item() == loss(7).item() and loss(7).item() != loss(8).item()


# --- ancestral sampling ------------------------------------------------------------------------
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_sampling_without_clipping_is_algorithm_2(variance):
    shape = (3, 1, 4, 4)
    diffusion = GaussianDiffusion(SCHEDULE, variance=variance, clip_denoised=False)
    # sigma_t^2 = beta_t, or beta tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t.
    if variance == "beta":
        sigmas = np.sqrt(BETAS)
    else:
        sigmas = np.sqrt(
            [(1 - alpha_bar(t - 1)) / (1 - alpha_bar(t)) * BETAS[t - 1] for t in range(1, T + 1)]
        )
    x_T, z = draw_sampler_noise(11, shape)
    expected = algorithm2(toy_model, x_T, sigmas, z)
    denoised = diffusion.denoise(toy_model, x_T, T, generator=_after_x_T(11, shape))
    torch.testing.assert_close(denoised.double(), expected, rtol=1e-5, atol=1e-5)
    sample = diffusion.sample(toy_model, shape, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(sample.double(), expected.clamp(-1, 1), rtol=1e-5, atol=1e-5)


def _after_x_T(seed, shape) -> torch.Generator:
    """A generator seeded with ``seed`` that has already drawn x_T."""
    generator = torch.Generator().manual_seed(seed)
    torch.randn(shape, generator=generator)
    return generator


def test_the_two_variances_give_different_samples_but_beta_is_the_larger():
    diffusion = {v: GaussianDiffusion(SCHEDULE, variance=v) for v in ("beta", "beta_tilde")}
    x_t, t = torch.zeros(1, 1, 2, 2), torch.tensor([5])
    log_var = {v: d.p_mean_variance(toy_model, x_t, t)[1].item() for v, d in diffusion.items()}
    assert log_var["beta"] == pytest.approx(math.log(BETAS[4]))
    assert log_var["beta_tilde"] == pytest.approx(
        math.log((1 - alpha_bar(4)) / (1 - alpha_bar(5)) * BETAS[4])
    )
    assert log_var["beta_tilde"] < log_var["beta"]


def test_sampling_is_reproducible_from_a_seed():
    diffusion = GaussianDiffusion(SCHEDULE)

    def sample(seed):
        return diffusion.sample(
            toy_model, (2, 1, 4, 4), generator=torch.Generator().manual_seed(seed)
        )

    assert torch.equal(sample(0), sample(0))
    assert not torch.equal(sample(0), sample(1))
    assert sample(0).min() >= -1 and sample(0).max() <= 1


def test_clipping_keeps_the_predicted_x0_in_range():
    x_t = torch.full((1, 1, 2, 2), 3.0)
    _, _, x0 = GaussianDiffusion(SCHEDULE).p_mean_variance(toy_model, x_t, T)
    _, _, x0_unclipped = GaussianDiffusion(SCHEDULE, clip_denoised=False).p_mean_variance(
        toy_model, x_t, T
    )
    assert x0_unclipped.max() > 1 and x0.max() == 1.0


def test_ancestral_sampling_with_an_exact_oracle_returns_the_single_data_point():
    point = torch.tensor([[[-0.7, 0.2], [0.9, 0.0]]])
    sample = GaussianDiffusion(SCHEDULE).sample(
        oracle_for(point), (5, 1, 2, 2), generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(sample, point.expand(5, 1, 2, 2), rtol=0, atol=1e-5)


# --- DDIM ----------------------------------------------------------------------------------------
def test_ddim_eta0_with_all_steps_is_the_deterministic_update():
    shape = (3, 1, 4, 4)
    diffusion = GaussianDiffusion(SCHEDULE, clip_denoised=False)
    generator = torch.Generator().manual_seed(21)
    out = diffusion.ddim_sample(toy_model, shape, steps=T, eta=0.0, generator=generator)
    # Song et al. eq. 12 with sigma = 0.
    reference_generator = torch.Generator().manual_seed(21)
    x = torch.randn(shape, generator=reference_generator).double()
    for t in range(T, 0, -1):
        eps = toy_model(x, torch.full((3,), t)).double()
        x0 = (x - math.sqrt(1 - alpha_bar(t)) * eps) / math.sqrt(alpha_bar(t))
        x = math.sqrt(alpha_bar(t - 1)) * x0 + math.sqrt(1 - alpha_bar(t - 1)) * eps
    torch.testing.assert_close(out.double(), x.clamp(-1, 1), rtol=1e-5, atol=1e-5)
    # Only x_T was drawn: both generators are at the same place.
    assert torch.equal(
        torch.rand(4, generator=generator), torch.rand(4, generator=reference_generator)
    )


def test_ddim_eta1_with_all_steps_is_ddpm_with_beta_tilde():
    # Song et al.: eta = 1 gives sigma_t^2 = beta tilde_t and the DDPM posterior mean.
    shape = (2, 1, 3, 3)
    ddim = GaussianDiffusion(SCHEDULE, clip_denoised=False).ddim_sample(
        toy_model, shape, steps=T, eta=1.0, generator=torch.Generator().manual_seed(3)
    )
    ddpm = GaussianDiffusion(SCHEDULE, variance="beta_tilde", clip_denoised=False).sample(
        toy_model, shape, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(ddim, ddpm, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps", [T, 4, 1])
def test_ddim_with_an_exact_oracle_returns_the_single_data_point(steps):
    point = torch.tensor([[[0.3, -0.5], [1.0, -1.0]]])
    model = Recorder(oracle_for(point))
    out = GaussianDiffusion(SCHEDULE).ddim_sample(
        model, (4, 1, 2, 2), steps=steps, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(out, point.expand(4, 1, 2, 2), rtol=0, atol=1e-5)
    visited = [int(t[0]) for _, t in model.calls]
    assert len(visited) == steps and visited[0] == T and visited == sorted(visited, reverse=True)


def test_ddim_rejects_more_steps_than_T():
    with pytest.raises(ValueError, match=r"DDIM steps must be in 1\.\.T=10"):
        GaussianDiffusion(SCHEDULE).ddim_sample(toy_model, (1, 1, 2, 2), steps=T + 1)


# --- reconstruction and interpolation ------------------------------------------------------------
def test_reconstruct_shape_and_exact_oracle():
    x0 = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = GaussianDiffusion(SCHEDULE).reconstruct(
        oracle_for(x0), x0, t=6, generator=torch.Generator().manual_seed(1)
    )
    assert out.shape == x0.shape
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-5)


def test_interpolate_shape_and_endpoints():
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(1, 4, 4, generator=generator) * 2 - 1
    b = torch.rand(1, 4, 4, generator=generator) * 2 - 1
    diffusion = GaussianDiffusion(SCHEDULE)
    lambdas = [0.0, 0.25, 0.5, 1.0]

    # The first model call sees (1 - lambda) x_t^a + lambda x_t^b, x_t from eq. 4 with one noise draw.
    model = Recorder(toy_model)
    out = diffusion.interpolate(
        model, a, b, t=5, lambdas=lambdas, generator=torch.Generator().manual_seed(9)
    )
    assert out.shape == (4, 1, 4, 4) and out.min() >= -1 and out.max() <= 1
    noise = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(9))
    x_t_a = math.sqrt(alpha_bar(5)) * a + math.sqrt(1 - alpha_bar(5)) * noise[0]
    x_t_b = math.sqrt(alpha_bar(5)) * b + math.sqrt(1 - alpha_bar(5)) * noise[1]
    first_input, first_t = model.calls[0]
    assert first_t.tolist() == [5] * 4
    for row, lam in enumerate(lambdas):
        torch.testing.assert_close(
            first_input[row], (1 - lam) * x_t_a + lam * x_t_b, rtol=1e-6, atol=1e-6
        )

    # At t = 1 decoding adds no noise: lambda = 0 and 1 decode x_1^a and x_1^b themselves.
    out = diffusion.interpolate(
        toy_model, a, b, t=1, lambdas=[0.0, 1.0], generator=torch.Generator().manual_seed(2)
    )
    noise = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    for row, (image, n) in enumerate([(a, noise[0]), (b, noise[1])]):
        x_1 = math.sqrt(alpha_bar(1)) * image + math.sqrt(1 - alpha_bar(1)) * n
        single = diffusion.denoise(toy_model, x_1[None], 1).clamp(-1, 1)
        torch.testing.assert_close(out[row], single[0], rtol=1e-6, atol=1e-6)


# --- variational bound ---------------------------------------------------------------------------
DATA_STD = 0.5


def gaussian_data_optimal_eps(x_t, t):
    """E[eps | x_t] for x_0 ~ N(0, s^2) per pixel: sqrt(1 - ab) x_t / (ab s^2 + 1 - ab)."""
    ab = at(ALPHA_BAR, t, x_t)
    return (1 - ab).sqrt() * x_t.double() / (ab * DATA_STD**2 + 1 - ab)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_variational_bound_terms_on_gaussian_data(variance):
    generator = torch.Generator().manual_seed(0)
    # 8-bit data in [-1, 1], as the discretised decoder assumes.
    x0 = to_model_range(from_model_range(DATA_STD * torch.randn(16, 1, 4, 4, generator=generator)))
    diffusion = GaussianDiffusion(SCHEDULE, variance=variance)
    model = Recorder(gaussian_data_optimal_eps)
    bound = diffusion.variational_bound(model, x0, generator=generator)
    terms = bound["terms"]
    assert terms.shape == (16, T) and torch.isfinite(terms).all() and (terms[:, 1:] >= 0).all()
    assert (bound["decoder"] > 0).all()
    torch.testing.assert_close(bound["decoder"], terms[:, 0])
    torch.testing.assert_close(bound["total"], terms.sum(1) + bound["prior"])
    for i in range(16):
        second_moment = float((x0[i].double() ** 2).mean())
        expected_prior = SCHEDULE.prior_kl_bits_per_dim(second_moment)
        assert bound["prior"][i].item() == pytest.approx(expected_prior, rel=1e-5, abs=1e-7)

    # Each term recomputed from the x_t the model saw.
    assert [int(t[0]) for _, t in model.calls] == list(range(1, T + 1))
    sigma2 = BETAS if variance == "beta" else SCHEDULE.posterior_variance
    x0_64 = x0.double()
    for x_t, t_vec in model.calls:
        t = int(t_vec[0])
        x_t = x_t.double()
        eps = gaussian_data_optimal_eps(x_t, t_vec)
        model_mean = (x_t - BETAS[t - 1] / math.sqrt(1 - alpha_bar(t)) * eps) / math.sqrt(
            1 - BETAS[t - 1]
        )
        if t == 1:
            # L_0, eq. 13. Like Ho et al.'s code, sigma_1^2 is beta tilde_2 (beta tilde_1 = 0).
            expected = -decoder_log_likelihood(
                x0_64, model_mean, math.sqrt(SCHEDULE.posterior_variance[1])
            )
        else:
            q_mean = torch.empty_like(x_t)
            for index in np.ndindex(*x_t.shape):
                q_mean[index], q_var = bayes_posterior(float(x0_64[index]), float(x_t[index]), t)
            expected = torch.distributions.kl_divergence(
                torch.distributions.Normal(q_mean, math.sqrt(q_var)),
                torch.distributions.Normal(model_mean, math.sqrt(sigma2[t - 1])),
            )
        expected_bits = expected.reshape(16, -1).mean(1) / math.log(2)
        torch.testing.assert_close(terms[:, t - 1].double(), expected_bits, rtol=2e-3, atol=2e-5)

    # The Bayes-optimal predictor beats one that ignores x_t's noise (eps = 0) on the KL terms.
    worse = diffusion.variational_bound(lambda x, t: torch.zeros_like(x), x0, generator=generator)
    assert worse["terms"][:, 1:].sum(1).mean() > terms[:, 1:].sum(1).mean()


def decoder_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log of the Gaussian's mass on x0's bin of width 2/255, the outer bins reaching +-inf."""
    normal = torch.distributions.Normal(mean, std)
    upper = torch.where(x0 > 0.999, torch.ones_like(x0), normal.cdf(x0 + 1 / 255))
    lower = torch.where(x0 < -0.999, torch.zeros_like(x0), normal.cdf(x0 - 1 / 255))
    return torch.log(upper - lower)


@pytest.mark.parametrize(("mean", "std"), [(0.0, 0.01), (0.9, 0.3), (-1.2, 0.002), (0.31, 2.0)])
def test_discretised_decoder_sums_to_one_over_the_256_bins(mean, std):
    # Bin centres in float64: in float32 their rounding alone moves the total by ~1e-6.
    bins = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    log_probs = _discretized_gaussian_log_likelihood(
        bins, torch.full_like(bins, mean), torch.full_like(bins, math.log(std))
    )
    assert log_probs.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    torch.testing.assert_close(
        log_probs.exp(), decoder_log_likelihood(bins, torch.tensor(mean), std).exp()
    )


def test_normal_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(2, 50, generator=generator, dtype=torch.float64)
    lv1, lv2 = torch.randn(2, 50, generator=generator, dtype=torch.float64)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()),
        torch.distributions.Normal(m2, (0.5 * lv2).exp()),
    )
    torch.testing.assert_close(_normal_kl(m1, lv1, m2, lv2), expected)


# --- arguments and image ranges ------------------------------------------------------------------
def test_invalid_variance_or_loss_names_the_argument():
    with pytest.raises(
        ValueError, match=r"variance must be one of \('beta', 'beta_tilde'\), got 'fixed'"
    ):
        GaussianDiffusion(SCHEDULE, variance="fixed")
    with pytest.raises(ValueError, match=r"loss must be one of \('mse', 'smooth_l1'\), got 'l1'"):
        GaussianDiffusion(SCHEDULE, loss="l1")


def test_model_range_round_trip():
    pixels = torch.arange(256, dtype=torch.uint8)
    images = to_model_range(pixels)
    assert images[0].item() == -1.0 and images[-1].item() == 1.0
    assert torch.equal(from_model_range(images), pixels)
    assert from_model_range(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
