"""The beta formulas of every schedule, in pure Python (``math`` and lists).

:mod:`ddpm.schedules` turns these lists into arrays; the workflow's config check calls them
directly, so that parsing the workflow needs neither NumPy nor PyTorch. Each formula exists
only here. Betas are returned for t = 1..T, the value of step ``t`` at index ``t - 1``.

Every schedule also takes the :data:`SCHEDULE_OPTIONS`, applied to its formula's betas in
this order (:func:`apply_options`):

``shift`` (log-SNR units, default 0)
    Simple diffusion's resolution shift (Hoogeboom, Heek and Salimans 2023):
    logit(alpha_bar_t) = logit(alpha_bar_t of the formula) + shift, i.e. SNR(t) times
    exp(shift). It acts on the alpha_bar of the formula's own betas (after the 1000/T
    rescale of linear and sigmoid and after cosine's clipping to [beta_min, beta_max]), and
    the betas of the shifted alpha_bar are not clipped again, so the identity holds to
    float64 rounding. A negative shift adds noise at every step (larger images).
``zero_terminal_snr`` (default false)
    Lin et al. 2024, Algorithm 1 (diffusers' ``rescale_zero_terminal_snr``): sqrt(alpha_bar)
    is shifted so that it is 0 at t = T and scaled so that it keeps its value at t = 1;
    beta_T becomes 1 and x_T is pure noise. Applied after the shift.

The options enter a schedule's recorded parameters only where given, so a schedule without
them is recorded (and computed) exactly as before they existed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real

from . import ConfigError

__all__ = [
    "FORMULAS",
    "SCHEDULE_OPTIONS",
    "SHIFT_LIMIT",
    "apply_options",
    "check_betas",
    "check_T",
    "cosine",
    "formula_betas",
    "linear",
    "rescale_zero_terminal_snr",
    "schedule_betas",
    "schedule_parameters",
    "shift_log_snr",
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


#: Options every schedule takes on top of its formula's parameters, with their defaults (off).
SCHEDULE_OPTIONS: dict[str, object] = {"shift": 0.0, "zero_terminal_snr": False}

#: The largest |shift| accepted: exp(10) ~ 22,000 times the SNR. Beyond it a schedule is all
#: signal or all noise at every step; simple diffusion's shifts for 32..1024 pixels are |shift| <= 6.
SHIFT_LIMIT = 10.0


def _log_alpha_bar(betas: Sequence[float]) -> list[float]:
    """log alpha_bar_t = sum_{s <= t} log(1 - beta_s), summed in order (as NumPy's cumsum)."""
    total, out = 0.0, []
    for beta in betas:
        total += math.log1p(-beta)
        out.append(total)
    return out


def _log_sigmoid(x: float) -> float:
    # log(1 / (1 + exp(-x))) without overflow for large |x|.
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def shift_log_snr(betas: Sequence[float], shift: float) -> list[float]:
    """The betas whose alpha_bar has logit(alpha_bar_t) = logit(alpha_bar_t of ``betas``) + shift.

    Computed in log space: log alpha_bar -> logit -> + shift -> log sigmoid -> betas from the
    ratio of consecutive alpha_bar, so that the identity holds to float64 rounding.
    """
    out, previous = [], 0.0  # log alpha_bar_0 = 0
    for log_ab in _log_alpha_bar(betas):
        logit = log_ab - math.log(-math.expm1(log_ab))
        shifted = _log_sigmoid(logit + shift)
        out.append(-math.expm1(shifted - previous))
        previous = shifted
    return out


def rescale_zero_terminal_snr(betas: Sequence[float]) -> list[float]:
    """Lin et al. 2024, Algorithm 1, as diffusers' ``rescale_zero_terminal_snr``: the betas whose
    sqrt(alpha_bar) is the original's shifted to 0 at t = T and scaled back to its value at
    t = 1. beta_T becomes exactly 1."""
    alpha_bar, product = [], 1.0
    for beta in betas:
        product *= 1.0 - beta
        alpha_bar.append(product)
    root = [math.sqrt(a) for a in alpha_bar]
    first, last = root[0], root[-1]
    if not first > last:
        raise ConfigError(
            "zero_terminal_snr needs alpha_bar to fall from t = 1 to t = T; this schedule has "
            f"sqrt(alpha_bar_1) = {first} and sqrt(alpha_bar_T) = {last}"
        )
    rescaled = [((r - last) * (first / (first - last))) ** 2 for r in root]
    return [1.0 - rescaled[0]] + [
        1.0 - rescaled[i] / rescaled[i - 1] for i in range(1, len(rescaled))
    ]


def apply_options(betas: list[float], shift: float = 0.0, zero_terminal_snr: bool = False):
    """A formula's ``betas`` with the :data:`SCHEDULE_OPTIONS` applied (shift, then the
    zero-terminal-SNR rescale); returned unchanged, the same list, when both are off."""
    if shift != 0.0:
        betas = shift_log_snr(betas, shift)
    if zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
    return betas


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
    """All parameters of schedule ``name`` (the formula's defaults filled in, the
    :data:`SCHEDULE_OPTIONS` kept only where given); unknown, ill-typed or out-of-range ones raise."""
    allowed = schedule_parameters(name)
    accepted = {**allowed, **SCHEDULE_OPTIONS}
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"beta_schedule {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are {sorted(allowed)}, and every schedule takes "
            f"{sorted(SCHEDULE_OPTIONS)}"
        )
    for key, value in params.items():
        _check_parameter(name, key, value, accepted[key])
    shift = params.get("shift", 0.0)
    if abs(shift) > SHIFT_LIMIT:
        raise ConfigError(
            f"beta_schedule {name!r}: parameter shift = {shift!r} is out of range: it is a "
            f"log-SNR offset and must lie in [-{SHIFT_LIMIT:g}, {SHIFT_LIMIT:g}] (e.g. "
            "-1.386 = -2 ln 2 for images of twice the side)"
        )
    return {**allowed, **params}


def _split_options(params: dict) -> tuple[dict, dict]:
    """Full parameters split into the formula's and the :data:`SCHEDULE_OPTIONS`."""
    options = {k: v for k, v in params.items() if k in SCHEDULE_OPTIONS}
    return {k: v for k, v in params.items() if k not in SCHEDULE_OPTIONS}, options


def formula_betas(name: str, T: int, full: dict) -> list[float]:
    """The betas of schedule ``name`` for checked parameters ``full`` (see
    :func:`check_parameters`): the formula's, then the options applied."""
    formula, options = _split_options(full)
    return apply_options(FORMULAS[name](T, **formula), **options)


def check_betas(betas: Sequence[float], name: str, params: dict) -> None:
    """Raise :class:`ConfigError` naming the first beta that is not finite or not in (0, 1).

    With ``zero_terminal_snr`` in ``params`` the last beta is 1 (alpha_bar_T = 0) by design.
    """
    last_is_one = bool(params.get("zero_terminal_snr", False))
    for t, beta in enumerate(betas, start=1):
        if not math.isfinite(beta):
            raise ConfigError(
                f"beta_{t} is not finite ({beta}); check the schedule parameters {params}"
            )
        if last_is_one and t == len(betas) and beta == 1.0:
            continue
        if not 0.0 < beta < 1.0:
            raise ConfigError(
                f"beta_{t} = {beta:.3g} lies outside (0, 1) in schedule {name!r} "
                f"with T={len(betas)} and parameters {params}; every beta must be in (0, 1): "
                f"change these parameters or T"
            )


def schedule_betas(name: str, T: int, **params) -> tuple[list[float], dict]:
    """The betas of schedule ``name`` with ``T`` steps and the full parameters, all checked."""
    full = check_parameters(name, params)
    betas = formula_betas(name, check_T(T), full)
    check_betas(betas, name, full)
    return betas, full
