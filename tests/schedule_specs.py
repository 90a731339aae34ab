"""Schedule specifications the tests use: the thesis's and report 003's constants.

The library holds no study constants (the study's schedules come from the config); the
tests that reproduce the seeds' figures build their own specs here.
"""

from collections.abc import Iterable

from ddpm.schedules import ScheduleSpec


def thesis_schedule_specs(T: int = 1000) -> list[ScheduleSpec]:
    """The thesis's schedules (Ho's linear, Nichol's cosine) plus a sigmoid, T = 1000."""
    return [
        ScheduleSpec("linear", "linear", T, {"beta_start": 1e-4, "beta_end": 0.02}),
        ScheduleSpec("cosine", "cosine", T, {"s": 0.008, "beta_max": 0.999}),
        ScheduleSpec("sigmoid", "sigmoid", T, {"beta_start": 1e-4, "beta_end": 0.02}),
    ]


def report_003_schedule_specs(
    Ts: Iterable[int] = (50, 100, 200, 400, 800),
) -> list[ScheduleSpec]:
    """Report 003's three schedules for every T in ``Ts``, its sigmoid verbatim (no ``+ start``)."""
    specs = []
    for T in Ts:
        ends = {"beta_start": 1e-5, "beta_end": 0.01, "rescale_to_T": True}
        specs.append(ScheduleSpec("linear", "linear", T, ends))
        cosine = {"s": 0.002, "beta_min": 1e-5, "beta_max": 0.9999}
        specs.append(ScheduleSpec("cosine", "cosine", T, cosine))
        specs.append(ScheduleSpec("sigmoid", "sigmoid", T, {**ends, "add_start": False}))
    return specs
