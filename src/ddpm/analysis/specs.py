"""Schedule specifications for the analysis (:class:`ddpm.spec.ScheduleSpec`).

The study config defines schedules by label (``{label: {beta_schedule, params}}``);
:func:`specs_from_config` crosses them with T values, and :func:`schedule_table` tabulates
beta, alpha_bar and log-SNR for each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import ConfigError
from ..schedules import ScheduleSpec

__all__ = ["schedule_table", "specs_from_config", "unique_specs"]


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
