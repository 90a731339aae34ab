"""What the network predicts (eps, x0, v, mu): each conversion against its formula, written here
in float64 from the raw betas; one reverse step against diffusers' DDPMScheduler; and the same
model expressed in each target giving the same loss, samples, DDIM samples and bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpm.diffusion import GaussianDiffusion
from ddpm.prediction import PREDICTIONS, prediction_problem
from ddpm.schedules import make_schedule

T = 10
SCHEDULE = make_schedule("linear", T, beta_start=1e-3, beta_end=0.4)
BETAS = SCHEDULE.betas.copy()
ALPHA_BAR = np.cumprod(1.0 - BETAS)
SHAPE = (4, 1, 3, 3)


def coefficient(values, t: torch.Tensor) -> torch.Tensor:
    """values[t - 1] per row (float64), shaped to broadcast against (N, C, H, W)."""
    return torch.tensor(values, dtype=torch.float64)[t - 1].reshape(-1, 1, 1, 1)


def alpha_bar_prev(t: torch.Tensor) -> torch.Tensor:
    return coefficient(np.concatenate([[1.0], ALPHA_BAR[:-1]]), t)


def posterior_mean(x0, x_t, t):
    """Ho et al. eq. 7: sqrt(ab_{t-1}) b_t / (1 - ab_t) x_0 + sqrt(a_t)(1 - ab_{t-1}) / (1 - ab_t) x_t."""
    ab, ab_prev, beta = coefficient(ALPHA_BAR, t), alpha_bar_prev(t), coefficient(BETAS, t)
    return (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)


def draw(seed: int):
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.rand(SHAPE, generator=generator, dtype=torch.float64) * 2 - 1
    eps = torch.randn(SHAPE, generator=generator, dtype=torch.float64)
    t = torch.tensor([1, 2, 6, T])
    ab = coefficient(ALPHA_BAR, t)
    return x0, eps, t, ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def exact(x0, eps, x_t, t) -> dict[str, torch.Tensor]:
    """Every target of (x0, eps) at step t, from its defining formula."""
    ab = coefficient(ALPHA_BAR, t)
    return {
        "eps": eps,
        "x0": x0,
        "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0,
        "mu": posterior_mean(x0, x_t, t),
    }


# --- conversions ---------------------------------------------------------------------------------
def test_every_conversion_matches_its_formula():
    x0, eps, t, x_t = draw(0)
    targets = exact(x0, eps, x_t, t)
    diffusion = GaussianDiffusion(SCHEDULE)
    close = {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(diffusion.v_from_x0_and_eps(x0, t, eps), targets["v"], **close)
    torch.testing.assert_close(diffusion.predict_x0_from_v(x_t, t, targets["v"]), x0, **close)
    torch.testing.assert_close(diffusion.predict_eps_from_v(x_t, t, targets["v"]), eps, **close)
    torch.testing.assert_close(diffusion.predict_x0_from_eps(x_t, t, eps), x0, **close)
    torch.testing.assert_close(diffusion.predict_eps_from_x0(x_t, t, x0), eps, **close)
    torch.testing.assert_close(diffusion.predict_x0_from_mu(x_t, t, targets["mu"]), x0, **close)
    torch.testing.assert_close(diffusion.q_posterior(x0, x_t, t)[0], targets["mu"], **close)
    for prediction in PREDICTIONS:
        target = GaussianDiffusion(SCHEDULE, prediction=prediction)
        torch.testing.assert_close(
            target.training_target(x0, eps, x_t, t), targets[prediction], **close
        )
        torch.testing.assert_close(target.predict_x0(targets[prediction], x_t, t), x0, **close)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_training_loss_compares_the_model_with_its_target(prediction):
    x0 = torch.rand(SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
    diffusion = GaussianDiffusion(SCHEDULE, prediction=prediction)
    seen = []

    def model(x_t, t):
        seen.append((x_t, t))
        return 0.5 * torch.tanh(x_t)

    loss = diffusion.training_loss(model, x0, generator=torch.Generator().manual_seed(4))
    # The same t and noise, drawn in the order training_loss draws them.
    generator = torch.Generator().manual_seed(4)
    t = torch.randint(1, T + 1, (SHAPE[0],), generator=generator)
    eps = torch.randn(SHAPE, generator=generator).double()
    x_t, t_seen = seen[0]
    assert t_seen.tolist() == t.tolist()
    ab = coefficient(ALPHA_BAR, t)
    torch.testing.assert_close(x_t, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    squared = (0.5 * torch.tanh(x_t) - exact(x0, eps, x_t, t)[prediction]) ** 2
    if prediction == "mu":
        # The bound's term: sigma_t^2 = beta_t, and at t = 1 beta tilde_2 (as the decoder's).
        variance = coefficient(np.concatenate([[SCHEDULE.posterior_variance[1]], BETAS[1:]]), t)
        squared = squared / (2 * variance)
    assert loss.item() == pytest.approx(squared.mean().item(), rel=1e-6)


def test_unknown_prediction_and_mu_with_smooth_l1_are_refused_by_name():
    with pytest.raises(ValueError, match=r"prediction must be one of .*got 'epsilon'"):
        GaussianDiffusion(SCHEDULE, prediction="epsilon")
    with pytest.raises(
        ValueError, match=r"prediction 'mu' cannot be trained with loss 'smooth_l1'"
    ):
        GaussianDiffusion(SCHEDULE, prediction="mu", loss="smooth_l1")
    assert all(prediction_problem(p, "mse") is None for p in PREDICTIONS)
    assert prediction_problem("x0", "smooth_l1") is None


# --- one reverse step against diffusers ----------------------------------------------------------
DIFFUSERS_TYPES = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def diffusers_scheduler(prediction: str, variance: str, clip: bool):
    diffusers = pytest.importorskip(
        "diffusers", reason="diffusers is installed with the bench extra"
    )
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=T,
        trained_betas=BETAS.tolist(),
        prediction_type=DIFFUSERS_TYPES[prediction],
        variance_type="fixed_large" if variance == "beta" else "fixed_small",
        clip_sample=clip,
        clip_sample_range=1.0,
    )
    # diffusers keeps its schedule in float32; the comparison is in float64.
    scheduler.betas = torch.tensor(BETAS, dtype=torch.float64)
    scheduler.alphas = 1.0 - scheduler.betas
    scheduler.alphas_cumprod = torch.tensor(ALPHA_BAR, dtype=torch.float64)
    return scheduler


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
@pytest.mark.parametrize("prediction", list(DIFFUSERS_TYPES))
def test_one_reverse_step_matches_diffusers_ddpm_scheduler(prediction, variance, clip):
    scheduler = diffusers_scheduler(prediction, variance, clip)
    diffusion = GaussianDiffusion(
        SCHEDULE, prediction=prediction, variance=variance, clip_denoised=clip
    )
    generator = torch.Generator().manual_seed(5)
    x_t = 1.5 * torch.randn(2, 1, 3, 3, generator=generator, dtype=torch.float64)
    output = 1.5 * torch.randn(2, 1, 3, 3, generator=generator, dtype=torch.float64)
    for t in (T, 4, 2, 1):  # diffusers counts from 0: its step t - 1 is our t
        theirs = scheduler.step(
            output[0:1], t - 1, x_t[0:1], generator=torch.Generator().manual_seed(t)
        )
        noise = torch.randn(
            (1, 1, 3, 3), generator=torch.Generator().manual_seed(t), dtype=torch.float64
        )
        mean, log_variance, x0 = diffusion.p_mean_variance(
            lambda x, t_vec: output[0:1], x_t[0:1], t
        )
        ours = mean + (0.5 * log_variance).exp() * noise if t > 1 else mean
        torch.testing.assert_close(x0, theirs.pred_original_sample, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ours, theirs.prev_sample, rtol=1e-12, atol=1e-12)


# --- the same model in every target --------------------------------------------------------------
def eps_model(x_t, t):
    """A fixed noise predictor that depends on x_t and t."""
    return 0.4 * torch.tanh(x_t) + 0.03 * t.to(x_t.dtype).reshape(-1, 1, 1, 1)


def as_target(prediction: str):
    """``eps_model`` re-expressed as a model that predicts ``prediction``."""
    reference = GaussianDiffusion(SCHEDULE)

    def model(x_t, t):
        eps = eps_model(x_t, t)
        x0 = reference.predict_x0_from_eps(x_t, t, eps)
        return exact(x0, eps, x_t, t)[prediction]

    return model


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("prediction", ["x0", "v", "mu"])
def test_the_same_model_in_any_target_samples_the_same_images(prediction, clip):
    eps = GaussianDiffusion(SCHEDULE, clip_denoised=clip)
    other = GaussianDiffusion(SCHEDULE, prediction=prediction, clip_denoised=clip)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected = eps.denoise(eps_model, x_T, T, generator=torch.Generator().manual_seed(7))
    got = other.denoise(as_target(prediction), x_T, T, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)

    ddim = [
        d.ddim_sample(m, SHAPE, steps=4, eta=0.5, generator=torch.Generator().manual_seed(8))
        for d, m in ((eps, eps_model), (other, as_target(prediction)))
    ]
    torch.testing.assert_close(ddim[1], ddim[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prediction", ["x0", "v", "mu"])
def test_the_same_model_in_any_target_has_the_same_bound(prediction):
    x0 = (
        torch.randint(0, 256, SHAPE, generator=torch.Generator().manual_seed(9)) / 127.5 - 1
    ).double()
    bounds = [
        d.variational_bound(m, x0, generator=torch.Generator().manual_seed(10))
        for d, m in (
            (GaussianDiffusion(SCHEDULE), eps_model),
            (GaussianDiffusion(SCHEDULE, prediction=prediction), as_target(prediction)),
        )
    ]
    for key in ("total", "terms", "x0_mse", "decoder_mse"):
        torch.testing.assert_close(bounds[1][key], bounds[0][key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_an_exact_predictor_of_any_target_returns_the_single_data_point(prediction):
    point = torch.tensor([[[-0.7, 0.2], [0.9, 0.0]]], dtype=torch.float64)
    reference = GaussianDiffusion(SCHEDULE)

    def oracle(x_t, t):
        ab = coefficient(ALPHA_BAR, t)
        eps = (x_t - ab.sqrt() * point) / (1 - ab).sqrt()
        x0 = reference.predict_x0_from_eps(x_t, t, eps)
        return exact(x0, eps, x_t, t)[prediction]

    diffusion = GaussianDiffusion(SCHEDULE, prediction=prediction)
    shape = (3, 1, 2, 2)
    sample = diffusion.sample(oracle, shape, generator=torch.Generator().manual_seed(0))
    ddim = diffusion.ddim_sample(oracle, shape, steps=5, generator=torch.Generator().manual_seed(1))
    for images in (sample, ddim):
        torch.testing.assert_close(images.double(), point.expand(shape), rtol=0, atol=1e-5)
    assert math.isfinite(float(sample.abs().max()))
