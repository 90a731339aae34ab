"""Noise (beta) schedules and every constant derived from them.

Timesteps follow the DDPM paper: ``t = 1, ..., T``. Arrays hold one value per
timestep, so the value at step ``t`` sits at index ``t - 1``.

Schedules, by name (``beta_schedule`` in the config):

``linear``
    Ho et al. 2020: betas evenly spaced from ``beta_start`` to ``beta_end``.
    With ``rescale_to_T`` both ends are multiplied by ``1000 / T`` so that the
    curve of alpha_bar over t/T keeps its shape for every T (report 003,
    improved-diffusion).
``cosine``
    Nichol & Dhariwal 2021: alpha_bar(t) = f(t) / f(0) with
    f(t) = cos^2(((t/T + s) / (1 + s)) * pi / 2); betas from the ratio of
    consecutive alpha_bar, clipped to ``[beta_min, beta_max]``.
``sigmoid``
    Report 003's sigmoid in *beta* space: sigmoid over linspace(-10, 10, T),
    scaled into ``[beta_start, beta_end]``. The report's code omits the final
    ``+ beta_start``; ``add_start=False`` reproduces it verbatim, the default
    (``True``) is the schedule its comments describe. With report 003's
    constants the two differ by at most ``beta_start`` (1e-5 x 1000/T).
``sigmoid_alpha_bar``
    Chen 2023 ("On the importance of noise scheduling"): a sigmoid in
    *alpha_bar* space, gamma(u) = (sigmoid(end/tau) - sigmoid((u(end-start)+start)/tau))
    / (sigmoid(end/tau) - sigmoid(start/tau)) for u = t/T.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

__all__ = [
    "SCHEDULES",
    "NoiseSchedule",
    "ScheduleError",
    "cosine_betas",
    "linear_betas",
    "make_schedule",
    "schedule_parameters",
    "sigmoid_alpha_bar_betas",
    "sigmoid_betas",
]


class ScheduleError(ValueError):
    """A schedule name or parameter is invalid; the message names it."""


def _check_T(T: int) -> int:
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 1:
        raise ScheduleError(
            f"T must be a positive integer (the number of diffusion steps), got {T!r}"
        )
    return int(T)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def linear_betas(
    T: int, beta_start: float = 1e-4, beta_end: float = 0.02, rescale_to_T: bool = False
) -> np.ndarray:
    """Ho et al.'s linear schedule; ``rescale_to_T`` multiplies both ends by 1000/T."""
    T = _check_T(T)
    scale = 1000.0 / T if rescale_to_T else 1.0
    return np.linspace(beta_start * scale, beta_end * scale, T, dtype=np.float64)


def cosine_betas(
    T: int, s: float = 0.008, beta_min: float = 0.0, beta_max: float = 0.999
) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule (their paper: s=0.008, max 0.999; report 003: s=0.002, [1e-5, 0.9999])."""
    T = _check_T(T)
    if s < 0:
        raise ScheduleError(f"cosine schedule: s must be >= 0, got {s}")
    u = np.linspace(0.0, 1.0, T + 1, dtype=np.float64)
    f = np.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2
    alpha_bar = f / f[0]
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return np.clip(betas, beta_min, beta_max)


def sigmoid_betas(
    T: int,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    rescale_to_T: bool = False,
    add_start: bool = True,
    input_range: float = 10.0,
) -> np.ndarray:
    """Report 003's sigmoid in beta space; ``add_start=False`` is the report's code verbatim."""
    T = _check_T(T)
    scale = 1000.0 / T if rescale_to_T else 1.0
    start, end = beta_start * scale, beta_end * scale
    x = np.linspace(-input_range, input_range, T, dtype=np.float64)
    betas = _sigmoid(x) * (end - start)
    return betas + start if add_start else betas


def sigmoid_alpha_bar_betas(
    T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0, beta_max: float = 0.999
) -> np.ndarray:
    """Chen 2023's sigmoid in alpha_bar space (defaults: start -3, end 3, tau 1)."""
    T = _check_T(T)
    if not end > start:
        raise ScheduleError(
            f"sigmoid_alpha_bar schedule: end ({end}) must be greater than start ({start})"
        )
    if tau <= 0:
        raise ScheduleError(f"sigmoid_alpha_bar schedule: tau must be > 0, got {tau}")
    v_start, v_end = _sigmoid(start / tau), _sigmoid(end / tau)
    u = np.linspace(0.0, 1.0, T + 1, dtype=np.float64)
    gamma = (v_end - _sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)
    gamma = np.clip(gamma, 1e-9, 1.0)
    betas = 1.0 - gamma[1:] / gamma[:-1]
    return np.clip(betas, 0.0, beta_max)


SCHEDULES: dict[str, Callable[..., np.ndarray]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
    "sigmoid_alpha_bar": sigmoid_alpha_bar_betas,
}


def schedule_parameters(name: str) -> dict[str, object]:
    """The parameters of schedule ``name`` with their defaults (T excluded)."""
    if name not in SCHEDULES:
        raise ScheduleError(f"unknown beta_schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    signature = inspect.signature(SCHEDULES[name])
    return {k: p.default for k, p in signature.parameters.items() if k != "T"}


def _check_parameter(name: str, key: str, value, default) -> None:
    """Reject a parameter of the wrong type or a non-finite number, naming it."""
    if isinstance(default, bool):
        if not isinstance(value, bool | np.bool_):
            raise ScheduleError(
                f"beta_schedule {name!r}: parameter {key} must be true or false, got {value!r}"
            )
        return
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        # YAML 1.1 reads 1e-4 (no dot) as a string; 1.0e-4 is a float.
        raise ScheduleError(
            f"beta_schedule {name!r}: parameter {key} must be a number, got {value!r} "
            f"({type(value).__name__}); in YAML write e.g. 1.0e-4, not 1e-4"
        )
    if not math.isfinite(value):
        raise ScheduleError(
            f"beta_schedule {name!r}: parameter {key} must be finite, got {value!r}"
        )


def make_schedule(name: str, T: int, **params) -> NoiseSchedule:
    """Build schedule ``name`` with ``T`` steps; unknown names or parameters are rejected by name."""
    allowed = schedule_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ScheduleError(
            f"beta_schedule {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are {sorted(allowed)}"
        )
    for key, value in params.items():
        _check_parameter(name, key, value, allowed[key])
    full = {**allowed, **params}
    betas = SCHEDULES[name](_check_T(T), **full)
    return NoiseSchedule(betas=betas, name=name, params=full)


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Betas for t = 1..T and the quantities the DDPM formulas need, in float64.

    ``betas[t - 1]`` is beta_t. ``alpha_bar_prev[t - 1]`` is alpha_bar_{t-1},
    with alpha_bar_0 = 1.
    """

    betas: np.ndarray
    name: str = "custom"
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        # A copy, so that freezing it below never makes the caller's array read-only.
        betas = np.array(self.betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 1:
            raise ScheduleError(
                f"betas must be a 1-D array with T >= 1 entries, got shape {betas.shape}"
            )
        bad = ~np.isfinite(betas)
        if bad.any():
            t = int(np.argmax(bad)) + 1
            raise ScheduleError(
                f"beta_{t} is not finite ({betas[t - 1]}); check the schedule parameters {self.params}"
            )
        outside = (betas <= 0) | (betas >= 1)
        if outside.any():
            t = int(np.argmax(outside)) + 1
            raise ScheduleError(
                f"beta_{t} = {betas[t - 1]:.3g} lies outside (0, 1) in schedule {self.name!r} "
                f"with T={betas.size} and parameters {self.params}; every beta must be in (0, 1): "
                f"change these parameters or T"
            )
        betas.setflags(write=False)
        object.__setattr__(self, "betas", betas)

    # --- the schedule itself -------------------------------------------------
    @property
    def T(self) -> int:
        return int(self.betas.size)

    @cached_property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @cached_property
    def alpha_bar(self) -> np.ndarray:
        """alpha_bar_t = prod_{s<=t} (1 - beta_s), computed in log space for accuracy."""
        return np.exp(np.cumsum(np.log1p(-self.betas)))

    @cached_property
    def alpha_bar_prev(self) -> np.ndarray:
        return np.concatenate([[1.0], self.alpha_bar[:-1]])

    @property
    def alpha_bar_T(self) -> float:
        return float(self.alpha_bar[-1])

    # --- derived quantities --------------------------------------------------
    @cached_property
    def posterior_variance(self) -> np.ndarray:
        """beta tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t); zero at t = 1."""
        return self.betas * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)

    @cached_property
    def log_snr(self) -> np.ndarray:
        """log(alpha_bar_t / (1 - alpha_bar_t)), the signal-to-noise ratio of q(x_t | x_0)."""
        return np.log(self.alpha_bar) - np.log1p(-self.alpha_bar)

    def kl_to_standard_normal(self, data_second_moment: float = 1.0) -> np.ndarray:
        """KL(q(x_t | x_0) || N(0, I)) per dimension in bits, for t = 1..T.

        q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I); averaged over the
        dimensions of x_0 the KL depends on x_0 only through its mean square.
        """
        if data_second_moment < 0:
            raise ScheduleError(f"data_second_moment must be >= 0, got {data_second_moment}")
        a = self.alpha_bar
        nats = 0.5 * ((1.0 - a) + a * data_second_moment - 1.0 - np.log1p(-a))
        return nats / math.log(2.0)

    def prior_kl_bits_per_dim(self, data_second_moment: float = 1.0) -> float:
        """The prior term L_T = KL(q(x_T | x_0) || N(0, I)) in bits per dimension."""
        return float(self.kl_to_standard_normal(data_second_moment)[-1])

    def to_frame(self):
        """One row per timestep: t, beta, alpha_bar, log_snr, posterior_variance."""
        import pandas as pd

        return pd.DataFrame(
            {
                "t": np.arange(1, self.T + 1),
                "beta": self.betas,
                "alpha_bar": self.alpha_bar,
                "log_snr": self.log_snr,
                "posterior_variance": self.posterior_variance,
            }
        )

    def as_tensor(self, name: str, device=None, dtype=torch.float32) -> torch.Tensor:
        """One of the arrays above as a tensor (computed in float64, then cast)."""
        return torch.tensor(np.array(getattr(self, name)), dtype=dtype, device=device)

    def describe(self) -> dict:
        """A JSON-friendly summary recorded next to every run."""
        return {"beta_schedule": self.name, "T": self.T, "params": dict(self.params)}
