"""Schedule specifications for the analysis (:class:`ddpm.spec.ScheduleSpec`).

The study config defines schedules by label (``{label: {beta_schedule, params}}``);
:func:`specs_from_config` crosses them with T values, and :func:`schedule_table` tabulates
beta, alpha_bar and log-SNR for each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

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
            raise ValueError(
                f"schedule {spec.label!r} with T={spec.T} is given twice; "
                "give each variant its own label"
            )
        seen.add((spec.label, spec.T))
    if not seen:
        raise ValueError("no schedules given; pass at least one ScheduleSpec")
    return list(specs)


def schedule_table(specs: Sequence[ScheduleSpec]) -> pd.DataFrame:
    """One row per (schedule, T, t): schedule, beta_schedule, T, t, beta, alpha_bar, log_snr, params.

    ``schedule`` is each spec's label; ``params`` (with the defaults filled in) is recorded as JSON.
    """
    frames = []
    for spec in unique_specs(specs):
        schedule = spec.build()
        frame = schedule.to_frame()[["t", "beta", "alpha_bar", "log_snr"]]
        frame.insert(0, "T", spec.T)
        frame.insert(0, "beta_schedule", spec.beta_schedule)
        frame.insert(0, "schedule", spec.label)
        frame["params"] = json.dumps(schedule.params, sort_keys=True)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
