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

Every schedule also takes ``shift`` (log-SNR offset: logit(alpha_bar_t) = logit(alpha_bar_t of
the formula) + shift) and ``zero_terminal_snr`` (Lin et al.'s rescale to alpha_bar_T = 0); see
:mod:`ddpm.beta_formulas`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import ConfigError
from . import beta_formulas as formulas

if TYPE_CHECKING:  # pandas is imported where a table is made
    import pandas as pd

__all__ = [
    "NoiseSchedule",
    "SCHEDULES",
    "ScheduleSpec",
    "cosine_betas",
    "linear_betas",
    "make_schedule",
    "schedule_table",
    "sigmoid_alpha_bar_betas",
    "sigmoid_betas",
    "specs_from_config",
    "unique_specs",
]


def _as_array(formula: Callable[..., list[float]]) -> Callable[..., np.ndarray]:
    """``formula`` (from :mod:`ddpm.beta_formulas`) returning a float64 array."""

    @functools.wraps(formula)
    def betas(T: int, **params) -> np.ndarray:
        return np.asarray(formula(T, **params), dtype=np.float64)

    return betas


linear_betas = _as_array(formulas.linear)
cosine_betas = _as_array(formulas.cosine)
sigmoid_betas = _as_array(formulas.sigmoid)
sigmoid_alpha_bar_betas = _as_array(formulas.sigmoid_alpha_bar)

SCHEDULES: dict[str, Callable[..., np.ndarray]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
    "sigmoid_alpha_bar": sigmoid_alpha_bar_betas,
}


def make_schedule(name: str, T: int, **params) -> NoiseSchedule:
    """Build schedule ``name`` with ``T`` steps; unknown names or parameters are rejected by name."""
    full = formulas.check_parameters(name, params)
    betas = np.asarray(formulas.formula_betas(name, formulas.check_T(T), full), dtype=np.float64)
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
    # The study's name for this schedule (see ddpm.spec.ScheduleSpec); None outside a study.
    label: str | None = None

    def __post_init__(self):
        # A copy, so that freezing it below never makes the caller's array read-only.
        betas = np.array(self.betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 1:
            raise ConfigError(
                f"betas must be a 1-D array with T >= 1 entries, got shape {betas.shape}"
            )
        formulas.check_betas(betas.tolist(), self.name, self.params)
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
        with np.errstate(divide="ignore"):  # beta_T = 1 (zero terminal SNR): alpha_bar_T = 0
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
        """log(alpha_bar_t / (1 - alpha_bar_t)), the signal-to-noise ratio of q(x_t | x_0)
        (-inf where alpha_bar_t = 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.alpha_bar) - np.log1p(-self.alpha_bar)

    def kl_to_standard_normal(self, data_second_moment: float = 1.0) -> np.ndarray:
        """KL(q(x_t | x_0) || N(0, I)) per dimension in bits, for t = 1..T.

        q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I); averaged over the
        dimensions of x_0 the KL depends on x_0 only through its mean square.
        """
        if data_second_moment < 0:
            raise ConfigError(f"data_second_moment must be >= 0, got {data_second_moment}")
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

    def labelled(self, label: str | None) -> NoiseSchedule:
        """This schedule under the study's ``label`` (the betas are shared, not recomputed)."""
        return dataclasses.replace(self, label=label)

    def describe(self) -> dict:
        """A JSON-friendly summary recorded next to every run (with ``label`` where set)."""
        summary = {"beta_schedule": self.name, "T": self.T, "params": dict(self.params)}
        if self.label is not None:
            summary["label"] = self.label
        return summary


def frozen_items(values: Mapping | tuple | None) -> tuple[tuple[str, Any], ...]:
    """A mapping as sorted ``(key, value)`` pairs, lists as tuples: hashable and ordered."""
    items = values.items() if isinstance(values, Mapping) else (values or ())
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in items))


@dataclass(frozen=True)
class ScheduleSpec:
    """A labelled noise schedule.

    Args:
        label: the name the study gives this schedule (a config key such as ``linear_scaled``);
            several labels may share one ``beta_schedule`` with different parameters.
        beta_schedule: the formula, a key of :data:`ddpm.beta_formulas.FORMULAS`.
        T: number of diffusion steps.
        params: the formula's parameters (a mapping; checked by name and stored, defaults
            filled in, as sorted pairs).
    """

    label: str
    beta_schedule: str
    T: int
    params: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self):
        # Every parameter, defaults filled in: the spec says all that decides the betas.
        params = formulas.check_parameters(self.beta_schedule, dict(frozen_items(self.params)))
        object.__setattr__(self, "params", frozen_items(params))
        object.__setattr__(self, "T", int(self.T))

    @property
    def parameters(self) -> dict:
        """``params`` as a dict, as :func:`ddpm.schedules.make_schedule` takes them."""
        return dict(self.params)

    @classmethod
    def from_definition(cls, label: str, definition: Mapping, T: int) -> ScheduleSpec:
        """A config definition ``{"beta_schedule": name, "params": {...}}`` at ``T`` steps."""
        if "beta_schedule" not in definition:
            raise ConfigError(
                f"schedule {label!r} has no 'beta_schedule' entry; give its name, e.g. linear"
            )
        return cls(label, definition["beta_schedule"], T, definition.get("params") or {})

    def build(self) -> NoiseSchedule:
        """The schedule."""
        return make_schedule(self.beta_schedule, self.T, **self.parameters).labelled(self.label)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "beta_schedule": self.beta_schedule,
            "T": self.T,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params},
        }

    @classmethod
    def from_dict(cls, values: Mapping) -> ScheduleSpec:
        """The inverse of :meth:`to_dict`; without a ``label`` the beta schedule names it."""
        missing = [key for key in ("beta_schedule", "T") if key not in values]
        if missing:
            raise ConfigError(f"a schedule spec needs {missing}, got keys {sorted(values)}")
        label = values.get("label") or values["beta_schedule"]
        return cls(label, values["beta_schedule"], values["T"], values.get("params") or {})


# --- tables of schedules (the analysis's schedules.csv) --------------------------------------
def specs_from_config(
    schedules: Mapping[str, Mapping], T_values: Iterable[int]
) -> list[ScheduleSpec]:
    """``{label: {"beta_schedule": name, "params": {...}}}`` x T values -> schedule specs."""
    T_values = list(T_values)
    return [
        ScheduleSpec.from_definition(label, definition, T)
        for label, definition in schedules.items()
        for T in T_values
    ]


def unique_specs(specs: Sequence[ScheduleSpec]) -> list[ScheduleSpec]:
    """``specs`` as a list, checked: at least one, each a ScheduleSpec, labels unique per T."""
    seen = set()
    for spec in specs:
        if not isinstance(spec, ScheduleSpec):
            raise ConfigError(
                "each schedule spec must be a ddpm.spec.ScheduleSpec(label, beta_schedule, T, "
                f"params), got {spec!r}"
            )
        if (spec.label, spec.T) in seen:
            raise ConfigError(
                f"schedule {spec.label!r} with T={spec.T} is given twice; "
                "give each variant its own label"
            )
        seen.add((spec.label, spec.T))
    if not seen:
        raise ConfigError("no schedules given; pass at least one ScheduleSpec")
    return list(specs)


def schedule_table(specs: Sequence[ScheduleSpec]) -> pd.DataFrame:
    """One row per (schedule, T, t): schedule, beta_schedule, T, t, beta, alpha_bar, log_snr,
    params, snr and kl_bits_per_dim.

    ``schedule`` is each spec's label; ``params`` (with the defaults filled in) is recorded as
    JSON. ``snr`` is alpha_bar_t / (1 - alpha_bar_t); ``kl_bits_per_dim`` is
    KL(q(x_t | x_0) || N(0, I)) per dimension for an x_0 of mean square 1, the largest an image
    in [-1, 1] can have (an upper bound for any image). At t = T they say how far x_T is from
    the N(0, I) that sampling starts from.
    """
    import pandas as pd

    frames = []
    for spec in unique_specs(specs):
        schedule = spec.build()
        frame = schedule.to_frame()[["t", "beta", "alpha_bar", "log_snr"]]
        frame.insert(0, "T", spec.T)
        frame.insert(0, "beta_schedule", spec.beta_schedule)
        frame.insert(0, "schedule", spec.label)
        frame["params"] = json.dumps(schedule.params, sort_keys=True)
        frame["snr"] = np.exp(frame["log_snr"])
        frame["kl_bits_per_dim"] = schedule.kl_to_standard_normal(1.0)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
