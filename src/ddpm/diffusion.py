"""The Gaussian diffusion process of Ho et al. 2020.

Forward process (closed form and step by step), the posterior q(x_{t-1} | x_t, x_0),
the training loss L_simple, ancestral sampling (Algorithm 2), DDIM, reconstruction,
interpolation and the variational bound in bits per dimension.

Images live in [-1, 1]. Timesteps ``t`` are integers in 1..T as in the paper; the
model is called as ``model(x_t, t)`` with ``t`` a LongTensor of shape (N,).

What the model predicts is the diffusion's ``prediction`` (:data:`ddpm.prediction.PREDICTIONS`): the noise eps
(Ho et al.), the clean image x_0, the velocity v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t)
x_0 (Salimans & Ho 2022) or the posterior mean mu~_t(x_t, x_0) itself (Ho et al.'s ablation).
Every use of the model (loss, x_0 estimate, ancestral sampling, DDIM, the bound) converts its
output with the same formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import ConfigError
from .prediction import prediction_problem
from .schedules import NoiseSchedule

__all__ = ["GaussianDiffusion", "from_model_range", "to_model_range"]

VARIANCES = ("beta", "beta_tilde")
LOSSES = ("mse", "smooth_l1")

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] to float images in [-1, 1]."""
    return images_uint8.float() / 127.5 - 1.0


def from_model_range(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] to uint8 in [0, 255] (clamped, rounded)."""
    return ((images.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def _as_input(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A model's output in the dtype of its input ``x``: float32 from bf16 autocast, and
    float64 where the input is float64 (the reference checks run in float64)."""
    return output.to(x.dtype)


def _normal(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    # Noise is drawn on the CPU so that a seed gives the same images on any device.
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)


class GaussianDiffusion:
    """DDPM with a fixed noise schedule.

    Args:
        schedule: the betas and their derived constants.
        variance: reverse-process variance sigma_t^2, ``"beta"`` (beta_t) or
            ``"beta_tilde"`` (the posterior variance); the paper found both similar.
        loss: ``"mse"`` (L_simple) or ``"smooth_l1"`` (used by report 002).
        clip_denoised: clip the predicted x_0 to [-1, 1] before forming the posterior
            mean when sampling. With ``False`` the update is exactly Algorithm 2.
        prediction: what the model predicts and the loss compares, one of
            :data:`ddpm.prediction.PREDICTIONS`: ``"eps"`` (the noise, L_simple), ``"x0"`` (the clean image),
            ``"v"`` (sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0) or ``"mu"`` (the posterior
            mean mu~_t; its loss is the bound's term, ||mu~ - mu||^2 / (2 sigma_t^2), so only
            ``loss="mse"`` fits it).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        *,
        variance: str = "beta",
        loss: str = "mse",
        clip_denoised: bool = True,
        prediction: str = "eps",
    ):
        if variance not in VARIANCES:
            raise ConfigError(f"variance must be one of {VARIANCES}, got {variance!r}")
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")
        problem = prediction_problem(prediction, loss, schedule.alpha_bar_T == 0.0)
        if problem:
            raise ConfigError(problem)
        self.schedule = schedule
        self.variance = variance
        self.loss = loss
        self.clip_denoised = clip_denoised
        self.prediction = prediction
        s = schedule
        pv = s.posterior_variance
        # Coefficients are computed in float64 by the schedule and cast once here. Where
        # alpha_bar_T = 0 (zero terminal SNR, v-prediction only) the reciprocals are inf at T,
        # and unused there.
        with np.errstate(divide="ignore"):
            sqrt_recip_alpha_bar = s.alpha_bar**-0.5
            sqrt_recipm1_alpha_bar = (1.0 / s.alpha_bar - 1.0) ** 0.5
        coeffs = {
            "betas": s.betas,
            "alphas": s.alphas,
            "alpha_bar": s.alpha_bar,
            "alpha_bar_prev": s.alpha_bar_prev,
            "sqrt_alpha_bar": s.alpha_bar**0.5,
            "sqrt_one_minus_alpha_bar": (1.0 - s.alpha_bar) ** 0.5,
            "sqrt_recip_alpha_bar": sqrt_recip_alpha_bar,
            "sqrt_recipm1_alpha_bar": sqrt_recipm1_alpha_bar,
            "posterior_variance": pv,
            "posterior_mean_coef1": s.betas * s.alpha_bar_prev**0.5 / (1.0 - s.alpha_bar),
            "posterior_mean_coef2": (1.0 - s.alpha_bar_prev) * s.alphas**0.5 / (1.0 - s.alpha_bar),
        }
        # beta tilde_1 = 0: its log is replaced by beta tilde_2 (improved-diffusion), which only
        # matters for the decoder term of the bound, never for sampling (no noise at t = 1).
        first = pv[1] if s.T > 1 else s.betas[0]
        coeffs["log_variance_beta"] = np.log(np.concatenate([[first], s.betas[1:]]))
        coeffs["log_variance_beta_tilde"] = np.log(np.concatenate([[first], pv[1:]]))
        self._coeffs = {
            k: torch.tensor(np.array(v), dtype=torch.float64) for k, v in coeffs.items()
        }
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def T(self) -> int:
        return self.schedule.T

    def _at(self, name: str, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The coefficient ``name`` at steps ``t`` (1..T), shaped to broadcast against ``x``."""
        key = (name, x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = self._coeffs[name].to(device=x.device, dtype=x.dtype)
        return self._cache[key][t - 1].reshape(-1, *([1] * (x.dim() - 1)))

    def _timesteps(self, t: int | torch.Tensor, n: int, device) -> torch.Tensor:
        if isinstance(t, int | np.integer) and not isinstance(t, bool):
            if not 1 <= t <= self.T:
                raise ConfigError(f"timestep t must be in 1..{self.T}, got {t}")
            return torch.full((n,), int(t), dtype=torch.long, device=device)
        t = torch.as_tensor(t, dtype=torch.long)
        # Checked because index t - 1 = -1 would silently pick step T for a 0-based t = 0.
        # Checked before the move, so that timesteps drawn on the CPU cost no device sync.
        if t.numel() and (int(t.min()) < 1 or int(t.max()) > self.T):
            raise ConfigError(
                f"timesteps t must be in 1..{self.T} (1-based, as in the paper), "
                f"got values in {int(t.min())}..{int(t.max())}"
            )
        return t.to(device)

    # --- forward process ------------------------------------------------------
    def q_sample(self, x0, t, noise=None, generator=None) -> torch.Tensor:
        """Sample q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) in closed form."""
        t = self._timesteps(t, x0.shape[0], x0.device)
        if noise is None:
            noise = _normal(x0.shape, generator, x0.device)
        return (
            self._at("sqrt_alpha_bar", t, x0) * x0
            + self._at("sqrt_one_minus_alpha_bar", t, x0) * noise
        )

    def q_step(self, x_prev, t, noise=None, generator=None) -> torch.Tensor:
        """One step of the chain, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)."""
        t = self._timesteps(t, x_prev.shape[0], x_prev.device)
        if noise is None:
            noise = _normal(x_prev.shape, generator, x_prev.device)
        beta = self._at("betas", t, x_prev)
        return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * noise

    def q_chain(
        self, x0, generator=None, keep: Iterable[int] | None = None
    ) -> dict[int, torch.Tensor]:
        """Run the chain x_0 -> x_1 -> ... -> x_T step by step; return x_t for every t in ``keep``."""
        keep = set(range(self.T + 1) if keep is None else keep)
        x, out = x0, {}
        if 0 in keep:
            out[0] = x0.clone()
        for t in range(1, self.T + 1):
            x = self.q_step(x, t, generator=generator)
            if t in keep:
                out[t] = x.clone()
        return out

    def q_posterior(self, x0, x_t, t):
        """Mean, variance and log-variance of q(x_{t-1} | x_t, x_0)."""
        t = self._timesteps(t, x0.shape[0], x0.device)
        mean = (
            self._at("posterior_mean_coef1", t, x_t) * x0
            + self._at("posterior_mean_coef2", t, x_t) * x_t
        )
        variance = self._at("posterior_variance", t, x_t)
        log_variance = self._at("log_variance_beta_tilde", t, x_t)
        return mean, variance, log_variance

    def predict_x0_from_eps(self, x_t, t, eps) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        t = self._timesteps(t, x_t.shape[0], x_t.device)
        return (
            self._at("sqrt_recip_alpha_bar", t, x_t) * x_t
            - self._at("sqrt_recipm1_alpha_bar", t, x_t) * eps
        )

    def predict_eps_from_x0(self, x_t, t, x0) -> torch.Tensor:
        t = self._timesteps(t, x_t.shape[0], x_t.device)
        return (self._at("sqrt_recip_alpha_bar", t, x_t) * x_t - x0) / self._at(
            "sqrt_recipm1_alpha_bar", t, x_t
        )

    def predict_x0_from_v(self, x_t, t, v) -> torch.Tensor:
        """x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v."""
        t = self._timesteps(t, x_t.shape[0], x_t.device)
        return (
            self._at("sqrt_alpha_bar", t, x_t) * x_t
            - self._at("sqrt_one_minus_alpha_bar", t, x_t) * v
        )

    def predict_eps_from_v(self, x_t, t, v) -> torch.Tensor:
        """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v."""
        t = self._timesteps(t, x_t.shape[0], x_t.device)
        return (
            self._at("sqrt_one_minus_alpha_bar", t, x_t) * x_t
            + self._at("sqrt_alpha_bar", t, x_t) * v
        )

    def v_from_x0_and_eps(self, x0, t, eps) -> torch.Tensor:
        """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, eq. 9)."""
        t = self._timesteps(t, x0.shape[0], x0.device)
        return (
            self._at("sqrt_alpha_bar", t, x0) * eps
            - self._at("sqrt_one_minus_alpha_bar", t, x0) * x0
        )

    def predict_x0_from_mu(self, x_t, t, mu) -> torch.Tensor:
        """x_0 from the posterior mean mu~ = c1 x_0 + c2 x_t (eq. 7): (mu - c2 x_t) / c1."""
        t = self._timesteps(t, x_t.shape[0], x_t.device)
        return (mu - self._at("posterior_mean_coef2", t, x_t) * x_t) / self._at(
            "posterior_mean_coef1", t, x_t
        )

    def predict_x0(self, output, x_t, t) -> torch.Tensor:
        """The x_0 estimate from the model's ``output`` at (x_t, t), whatever it predicts."""
        if self.prediction == "eps":
            return self.predict_x0_from_eps(x_t, t, output)
        if self.prediction == "x0":
            return output
        if self.prediction == "v":
            return self.predict_x0_from_v(x_t, t, output)
        return self.predict_x0_from_mu(x_t, t, output)

    def _x0_and_eps(self, output, x_t, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_0, eps) from the model's output, each by its best-conditioned formula."""
        if self.prediction == "eps":
            return self.predict_x0_from_eps(x_t, t, output), output
        if self.prediction == "v":
            return self.predict_x0_from_v(x_t, t, output), self.predict_eps_from_v(x_t, t, output)
        x0 = self.predict_x0(output, x_t, t)
        return x0, self.predict_eps_from_x0(x_t, t, x0)

    def training_target(self, x0, noise, x_t, t) -> torch.Tensor:
        """What the model should output at (x_t, t) for x_t = q_sample(x0, t, noise)."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        if self.prediction == "v":
            return self.v_from_x0_and_eps(x0, t, noise)
        return self.q_posterior(x0, x_t, t)[0]

    # --- training --------------------------------------------------------------
    def training_loss(self, model: Model, x0: torch.Tensor, generator=None) -> torch.Tensor:
        """L_simple: t ~ U{1..T}, eps ~ N(0, I), loss between eps and model(x_t, t).

        With another ``prediction`` the loss compares the model with that target instead; for
        ``"mu"`` it is the bound's term ||mu~ - mu||^2 / (2 sigma_t^2), averaged over pixels.
        """
        n = x0.shape[0]
        # t stays on the CPU until q_sample has checked it, so the check costs no device sync.
        t = torch.randint(1, self.T + 1, (n,), generator=generator)
        noise = _normal(x0.shape, generator, x0.device)
        x_t = self.q_sample(x0, t, noise)
        predicted = model(x_t, t.to(x0.device))
        target = self.training_target(x0, noise, x_t, t)
        if self.prediction == "mu":
            t_here = self._timesteps(t, n, x0.device)
            weight = torch.exp(-self._at(f"log_variance_{self.variance}", t_here, x0)) / 2
            return (weight * (predicted.float() - target) ** 2).mean()
        if self.loss == "mse":
            return F.mse_loss(predicted.float(), target)
        return F.smooth_l1_loss(predicted.float(), target)

    # --- reverse process -------------------------------------------------------
    def p_mean_variance(self, model: Model, x_t, t, clip_denoised: bool | None = None):
        """Mean and log-variance of p_theta(x_{t-1} | x_t), and the predicted x_0."""
        clip = self.clip_denoised if clip_denoised is None else clip_denoised
        t = self._timesteps(t, x_t.shape[0], x_t.device)
        output = _as_input(model(x_t, t), x_t)
        x0 = self.predict_x0(output, x_t, t)
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
        if self.prediction == "mu" and not clip:
            mean = output  # the model's own mean: no round trip through x_0 (1 / c1 is large)
        else:
            mean, _, _ = self.q_posterior(x0, x_t, t)
        log_variance = self._at(f"log_variance_{self.variance}", t, x_t)
        return mean, log_variance, x0

    @torch.no_grad()
    def denoise(
        self, model: Model, x_t, t_start: int, generator=None, progress=False
    ) -> torch.Tensor:
        """Algorithm 2 from step ``t_start`` down to 0: x_{t-1} = mean + sigma_t z, z = 0 at t = 1."""
        x = x_t
        steps = range(t_start, 0, -1)
        for t in tqdm(steps, desc="sampling", disable=not progress, mininterval=10, leave=False):
            mean, log_variance, _ = self.p_mean_variance(model, x, t)
            if t > 1:
                x = mean + (0.5 * log_variance).exp() * _normal(x.shape, generator, x.device)
            else:
                x = mean
        return x

    @torch.no_grad()
    def sample(
        self, model: Model, shape, generator=None, device="cpu", progress=False
    ) -> torch.Tensor:
        """Ancestral sampling from x_T ~ N(0, I); returns images in [-1, 1]."""
        x_T = _normal(tuple(shape), generator, device)
        return self.denoise(model, x_T, self.T, generator=generator, progress=progress).clamp(-1, 1)

    @torch.no_grad()
    def ddim_sample(
        self,
        model: Model,
        shape,
        steps: int,
        eta: float = 0.0,
        generator=None,
        device="cpu",
        progress=False,
    ) -> torch.Tensor:
        """DDIM (Song et al. 2021) over ``steps`` <= T evenly spaced timesteps; eta=1 is DDPM-like."""
        if not 1 <= steps <= self.T:
            raise ConfigError(f"DDIM steps must be in 1..T={self.T}, got {steps}")
        timesteps = torch.linspace(self.T, 1, steps).round().long().unique_consecutive().tolist()
        x = _normal(tuple(shape), generator, device)
        alpha_bar = self._coeffs["alpha_bar"]
        for i, t in enumerate(
            tqdm(timesteps, desc="ddim", disable=not progress, mininterval=10, leave=False)
        ):
            t_vec = self._timesteps(t, x.shape[0], x.device)
            x0, eps = self._x0_and_eps(_as_input(model(x, t_vec), x), x, t_vec)
            a_t = float(alpha_bar[t - 1])
            if self.clip_denoised:
                x0 = x0.clamp(-1.0, 1.0)
                if a_t > 0:  # at alpha_bar_t = 0 (zero terminal SNR) x_t is the noise itself
                    eps = self.predict_eps_from_x0(x, t_vec, x0)
            a_prev = float(alpha_bar[timesteps[i + 1] - 1]) if i + 1 < len(timesteps) else 1.0
            sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
            x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
            if sigma > 0 and i + 1 < len(timesteps):
                x = x + sigma * _normal(x.shape, generator, x.device)
        return x.clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(self, model: Model, x0, t: int, generator=None) -> torch.Tensor:
        """Noise real images to step ``t`` with q(x_t | x_0), then denoise them back (report 002, fig. 4)."""
        x_t = self.q_sample(x0, t, generator=generator)
        return self.denoise(model, x_t, t, generator=generator).clamp(-1, 1)

    @torch.no_grad()
    def interpolate(
        self, model: Model, x0_a, x0_b, t: int, lambdas, generator=None
    ) -> torch.Tensor:
        """Interpolate two images through x_t (Ho et al. sec. 4.3): returns one row per lambda.

        Both images are noised to step ``t`` once, so every lambda mixes the same
        x_t^a and x_t^b as (1 - lambda) x_t^a + lambda x_t^b; the mixtures are then
        denoised. Output shape: (len(lambdas), C, H, W).
        """
        x0 = torch.stack([x0_a, x0_b])
        noise = _normal(x0.shape, generator, x0.device)
        x_t = self.q_sample(x0, t, noise)
        lam = torch.as_tensor(list(lambdas), dtype=x0.dtype, device=x0.device).reshape(-1, 1, 1, 1)
        mixed = (1 - lam) * x_t[0:1] + lam * x_t[1:2]
        return self.denoise(model, mixed, t, generator=generator).clamp(-1, 1)

    # --- the variational bound -------------------------------------------------
    @torch.no_grad()
    def variational_bound(self, model: Model, x0, generator=None) -> dict[str, torch.Tensor]:
        """The negative ELBO in bits per dimension, per image, as in the DDPM paper.

        Returns ``total``, ``prior`` (L_T), ``decoder`` (L_0, discretised Gaussian
        decoder over 256 levels) and ``terms`` (N x T: column t-1 holds L_{t-1}, the
        first column being L_0). For progressive coding (Ho et al. sec. 4.3) also
        ``x0_mse`` (N x T: column t-1 holds the mean squared error, in [-1, 1] units, of
        the model's x_0 estimate from the x_t of term t, clipped to [-1, 1] as Ho et al.'s
        code does) and ``decoder_mse`` (N: that of the decoder's most likely 8-bit image,
        its mean rounded to the nearest of the 256 levels).
        """
        n = x0.shape[0]
        terms = torch.zeros(n, self.T, device=x0.device)
        x0_mse = torch.zeros(n, self.T, device=x0.device)
        for t in range(1, self.T + 1):
            t_vec = self._timesteps(t, n, x0.device)
            x_t = self.q_sample(x0, t_vec, generator=generator)
            mean, log_var, x0_hat = self.p_mean_variance(model, x_t, t_vec, clip_denoised=False)
            x0_mse[:, t - 1] = _mean_flat((x0_hat.clamp(-1.0, 1.0) - x0) ** 2)
            if t == 1:
                nll = -_discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var)
                terms[:, 0] = _mean_flat(nll) / math.log(2.0)
                decoded = to_model_range(from_model_range(mean)).to(x0.device)
                decoder_mse = _mean_flat((decoded - x0) ** 2)
            else:
                true_mean, _, true_log_var = self.q_posterior(x0, x_t, t_vec)
                kl = _normal_kl(true_mean, true_log_var, mean, log_var)
                terms[:, t - 1] = _mean_flat(kl) / math.log(2.0)
        t_T = self._timesteps(self.T, n, x0.device)
        prior_mean = self._at("sqrt_alpha_bar", t_T, x0) * x0
        prior_log_var = torch.log1p(-self._at("alpha_bar", t_T, x0)).expand_as(x0)
        prior = _mean_flat(
            _normal_kl(prior_mean, prior_log_var, torch.zeros_like(x0), torch.zeros_like(x0))
        )
        prior = prior / math.log(2.0)
        return {
            "total": terms.sum(1) + prior,
            "prior": prior,
            "decoder": terms[:, 0],
            "terms": terms,
            "x0_mse": x0_mse,
            "decoder_mse": decoder_mse,
        }


def _mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(1)


def _normal_kl(mean1, log_var1, mean2, log_var2) -> torch.Tensor:
    """KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))) elementwise, in nats."""
    return 0.5 * (
        log_var2
        - log_var1
        + torch.exp(log_var1 - log_var2)
        + (mean1 - mean2) ** 2 * torch.exp(-log_var2)
        - 1.0
    )


def _standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _discretized_gaussian_log_likelihood(x, mean, log_scale) -> torch.Tensor:
    """log-probability of 8-bit data x in [-1, 1] under a Gaussian discretised into 256 bins.

    The outermost bins extend to -inf and +inf (Ho et al., eq. 13).
    """
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(
            x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
        ),
    )
    return log_probs
