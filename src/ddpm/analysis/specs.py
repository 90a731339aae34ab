"""Schedule specifications for the analysis: ``(label, beta_schedule, T, params)`` tuples.

The study config defines schedules by label (``{label: {beta_schedule, params}}``);
:func:`specs_from_config` crosses them with T values, and :func:`schedule_table` tabulates
beta, alpha_bar and log-SNR for each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from ..schedules import make_schedule

__all__ = ["normalise_specs", "schedule_table", "specs_from_config"]


def specs_from_config(
    schedules: Mapping[str, Mapping], T_values: Iterable[int]
) -> list[tuple[str, str, int, dict]]:
    """``{label: {"beta_schedule": name, "params": {...}}}`` x T values -> spec tuples."""
    specs = []
    for label, definition in schedules.items():
        if "beta_schedule" not in definition:
            raise ValueError(
                f"schedule {label!r} has no 'beta_schedule' entry; give its name, e.g. linear"
            )
        for T in T_values:
            specs.append(
                (label, definition["beta_schedule"], int(T), dict(definition.get("params") or {}))
            )
    return specs


def normalise_specs(specs: Sequence[Sequence]) -> list[tuple[str, str, int, dict]]:
    """Accept ``(name, T, params)`` or ``(label, name, T, params)``; labels must be unique per T."""
    out, seen = [], set()
    for spec in specs:
        if len(spec) == 3:
            name, T, params = spec
            label = name
        elif len(spec) == 4:
            label, name, T, params = spec
        else:
            raise ValueError(
                f"a schedule spec is (name, T, params) or (label, name, T, params), got {spec!r}"
            )
        if (label, T) in seen:
            raise ValueError(
                f"schedule {label!r} with T={T} is given twice; give each variant its own label"
            )
        seen.add((label, T))
        out.append((str(label), str(name), int(T), dict(params or {})))
    if not out:
        raise ValueError("no schedules given; pass at least one (name, T, params)")
    return out


def schedule_table(specs: Sequence[Sequence]) -> pd.DataFrame:
    """One row per (schedule, T, t): schedule, beta_schedule, T, t, beta, alpha_bar, log_snr, params.

    ``specs`` holds ``(name, T, params)`` or ``(label, name, T, params)`` tuples; ``params``
    are passed to :func:`ddpm.schedules.make_schedule` and recorded as JSON.
    """
    frames = []
    for label, name, T, params in normalise_specs(specs):
        schedule = make_schedule(name, T, **params)
        frame = schedule.to_frame()[["t", "beta", "alpha_bar", "log_snr"]]
        frame.insert(0, "T", T)
        frame.insert(0, "beta_schedule", name)
        frame.insert(0, "schedule", label)
        frame["params"] = json.dumps(schedule.params, sort_keys=True)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
