"""The beta formulas of every schedule, in pure Python (``math`` and lists).

:mod:`ddpm.schedules` turns these lists into arrays; the workflow's config check calls them
directly, so that parsing the workflow needs neither NumPy nor PyTorch. Each formula exists
only here. Betas are returned for t = 1..T, the value of step ``t`` at index ``t - 1``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real

from . import ConfigError

__all__ = [
    "FORMULAS",
    "check_betas",
    "check_T",
    "cosine",
    "linear",
    "schedule_betas",
    "schedule_parameters",
    "sigmoid",
    "sigmoid_alpha_bar",
]


def check_T(T) -> int:
    """``T`` as an int; anything but a positive integer raises :class:`ConfigError`."""
    if isinstance(T, bool) or not isinstance(T, Integral) or T < 1:
        raise ConfigError(
            f"T must be a positive integer (the number of diffusion steps), got {T!r}"
        )
    return int(T)


def _linspace(start: float, stop: float, count: int) -> list[float]:
    if count == 1:
        return [float(start)]
    step = (stop - start) / (count - 1)
    return [start + i * step for i in range(count - 1)] + [float(stop)]


def _sigmoid(x: float) -> float:
    # Two branches so that exp never overflows for large |x|.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _clip(values: Sequence[float], low: float, high: float) -> list[float]:
    return [min(max(v, low), high) for v in values]


def linear(
    T: int, beta_start: float = 1e-4, beta_end: float = 0.02, rescale_to_T: bool = False
) -> list[float]:
    """Ho et al.'s linear schedule; ``rescale_to_T`` multiplies both ends by 1000/T."""
    T = check_T(T)
    scale = 1000.0 / T if rescale_to_T else 1.0
    return _linspace(beta_start * scale, beta_end * scale, T)


def cosine(T: int, s: float = 0.008, beta_min: float = 0.0, beta_max: float = 0.999) -> list[float]:
    """Nichol & Dhariwal's cosine schedule (their paper: s=0.008, max 0.999; report 003: s=0.002, [1e-5, 0.9999])."""
    T = check_T(T)
    if s < 0:
        raise ConfigError(f"cosine schedule: s must be >= 0, got {s}")
    f = [math.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2 for u in _linspace(0.0, 1.0, T + 1)]
    alpha_bar = [v / f[0] for v in f]
    betas = [1.0 - alpha_bar[i + 1] / alpha_bar[i] for i in range(T)]
    return _clip(betas, beta_min, beta_max)


def sigmoid(
    T: int,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    rescale_to_T: bool = False,
    add_start: bool = True,
    input_range: float = 10.0,
) -> list[float]:
    """Report 003's sigmoid in beta space; ``add_start=False`` is the report's code verbatim."""
    T = check_T(T)
    scale = 1000.0 / T if rescale_to_T else 1.0
    start, end = beta_start * scale, beta_end * scale
    offset = start if add_start else 0.0
    return [_sigmoid(x) * (end - start) + offset for x in _linspace(-input_range, input_range, T)]


def sigmoid_alpha_bar(
    T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0, beta_max: float = 0.999
) -> list[float]:
    """Chen 2023's sigmoid in alpha_bar space (defaults: start -3, end 3, tau 1)."""
    T = check_T(T)
    if not end > start:
        raise ConfigError(
            f"sigmoid_alpha_bar schedule: end ({end}) must be greater than start ({start})"
        )
    if tau <= 0:
        raise ConfigError(f"sigmoid_alpha_bar schedule: tau must be > 0, got {tau}")
    v_start, v_end = _sigmoid(start / tau), _sigmoid(end / tau)
    gamma = [
        (v_end - _sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)
        for u in _linspace(0.0, 1.0, T + 1)
    ]
    gamma = _clip(gamma, 1e-9, 1.0)
    return _clip([1.0 - gamma[i + 1] / gamma[i] for i in range(T)], 0.0, beta_max)


FORMULAS: dict[str, Callable[..., list[float]]] = {
    "linear": linear,
    "cosine": cosine,
    "sigmoid": sigmoid,
    "sigmoid_alpha_bar": sigmoid_alpha_bar,
}


def schedule_parameters(name: str) -> dict[str, object]:
    """The parameters of schedule ``name`` with their defaults (T excluded)."""
    if name not in FORMULAS:
        raise ConfigError(f"unknown beta_schedule {name!r}; choose one of {sorted(FORMULAS)}")
    signature = inspect.signature(FORMULAS[name])
    return {k: p.default for k, p in signature.parameters.items() if k != "T"}


def _check_parameter(name: str, key: str, value, default) -> None:
    """Reject a parameter of the wrong type or a non-finite number, naming it."""
    if isinstance(default, bool):
        # NumPy's bool_ is no Python bool; accept it by its type name to stay NumPy-free.
        if not (isinstance(value, bool) or type(value).__name__ == "bool_"):
            raise ConfigError(
                f"beta_schedule {name!r}: parameter {key} must be true or false, got {value!r}"
            )
        return
    if isinstance(value, bool) or not isinstance(value, Real):
        # YAML 1.1 reads 1e-4 (no dot) as a string; 1.0e-4 is a float.
        raise ConfigError(
            f"beta_schedule {name!r}: parameter {key} must be a number, got {value!r} "
            f"({type(value).__name__}); in YAML write e.g. 1.0e-4, not 1e-4"
        )
    if not math.isfinite(value):
        raise ConfigError(f"beta_schedule {name!r}: parameter {key} must be finite, got {value!r}")


def check_parameters(name: str, params: dict) -> dict:
    """All parameters of schedule ``name`` (defaults filled in); unknown or ill-typed ones raise."""
    allowed = schedule_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"beta_schedule {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are {sorted(allowed)}"
        )
    for key, value in params.items():
        _check_parameter(name, key, value, allowed[key])
    return {**allowed, **params}


def check_betas(betas: Sequence[float], name: str, params: dict) -> None:
    """Raise :class:`ConfigError` naming the first beta that is not finite or not in (0, 1)."""
    for t, beta in enumerate(betas, start=1):
        if not math.isfinite(beta):
            raise ConfigError(
                f"beta_{t} is not finite ({beta}); check the schedule parameters {params}"
            )
        if not 0.0 < beta < 1.0:
            raise ConfigError(
                f"beta_{t} = {beta:.3g} lies outside (0, 1) in schedule {name!r} "
                f"with T={len(betas)} and parameters {params}; every beta must be in (0, 1): "
                f"change these parameters or T"
            )


def schedule_betas(name: str, T: int, **params) -> tuple[list[float], dict]:
    """The betas of schedule ``name`` with ``T`` steps and the full parameters, all checked."""
    full = check_parameters(name, params)
    betas = FORMULAS[name](check_T(T), **full)
    check_betas(betas, name, full)
    return betas, full
