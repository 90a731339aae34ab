"""How much signal each grid cell leaves at T, what that says about FID differences, and the
comparison of a dataset with its enlarged variant (the shift study's answer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ddpm.report.noise_levels import terminal_snr_html, variant_section
from ddpm.schedules import ScheduleSpec, schedule_table
from ddpm.verdicts import (
    CANNOT_TELL,
    DOES_NOT_HOLD,
    HOLDS,
    TERMINAL_KL_FLAG_BITS,
    terminal_snr,
    terminal_snr_readings,
    variant_comparison,
)

SPECS = [
    ScheduleSpec(
        "linear", "linear", T, {"beta_start": 1.0e-5, "beta_end": 0.01, "rescale_to_T": True}
    )
    for T in (50, 100)
] + [
    ScheduleSpec("cosine", "cosine", T, {"s": 0.002, "beta_min": 1.0e-5, "beta_max": 0.9999})
    for T in (50, 100)
]


@pytest.fixture(scope="module")
def schedules():
    return schedule_table(SPECS)


def test_terminal_snr_per_cell_from_the_schedule_table(schedules):
    terminal = terminal_snr(schedules).set_index(["schedule", "T"])
    for spec in SPECS:
        schedule = spec.build()
        row = terminal.loc[(spec.label, spec.T)]
        assert row["alpha_bar_T"] == pytest.approx(schedule.alpha_bar_T, rel=1e-12)
        assert row["snr_T"] == pytest.approx(schedule.alpha_bar_T / (1 - schedule.alpha_bar_T))
        assert row["kl_bits_per_dim_T"] == pytest.approx(schedule.prior_kl_bits_per_dim(1.0))
        assert row["far_from_noise"] == (
            schedule.prior_kl_bits_per_dim(1.0) > TERMINAL_KL_FLAG_BITS
        )
    # report 003's linear leaves alpha_bar_T ~ 0.005 (flagged); its cosine ~ 1e-7 (not)
    assert terminal.loc[("linear", 50), "far_from_noise"]
    assert not terminal.loc[("cosine", 50), "far_from_noise"]


def _runs(fid: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"schedule": schedule, "T": T, "seed": seed, "classifier_fid": value}
            for (schedule, T), values in fid.items()
            for seed, value in enumerate(values)
        ]
    )


def test_terminal_snr_may_explain_only_where_the_flagged_schedule_is_worse(schedules):
    runs = _runs(
        {
            ("linear", 50): [20.0, 21.0, 22.0],
            ("cosine", 50): [10.0, 11.0, 12.5],
            ("linear", 100): [10.0, 11.0, 12.0],
            ("cosine", 100): [20.0, 21.5, 22.0],
        }
    )
    readings = terminal_snr_readings(runs, terminal_snr(schedules)).set_index("T")
    assert readings.loc[50, "far from noise at T"] == "linear"
    assert "may explain part" in readings.loc[50, "reading"]
    assert "does not explain it" in readings.loc[100, "reading"]


def test_the_grid_section_flags_the_cells_far_from_noise(schedules):
    html = terminal_snr_html(schedules, ["linear", "cosine"], [50, 100])
    assert "2 of 4 cells are flagged: linear." in html


def test_variant_comparison_against_the_base_reference():
    base = _runs({("cosine", 200): [10.0, 10.5, 11.0], ("shifted", 200): [10.2, 10.4, 10.6]})
    variant = _runs({("cosine", 200): [20.0, 21.0, 22.0], ("shifted", 200): [10.1, 10.5, 10.9]})
    table = variant_comparison({"d": base, "d_x2": variant}, {"d_x2": "d"}, "cosine")
    rows = table.set_index(["dataset", "schedule"])
    assert ("d", "cosine") not in rows.index  # the reference itself
    unshifted = rows.loc[("d_x2", "cosine")]
    assert unshifted["difference"] == pytest.approx(10.5)
    assert unshifted["worse"] == HOLDS and unshifted["recovers"] == DOES_NOT_HOLD
    shifted = rows.loc[("d_x2", "shifted")]
    assert shifted["difference"] == pytest.approx(0.0) and shifted["worse"] == CANNOT_TELL
    assert rows.loc[("d", "shifted"), "margin"] == pytest.approx(1.05)


def test_variant_section_is_only_for_studies_with_a_variant():
    class Dataset:
        def __init__(self, name, runs):
            self.name, self.runs = name, runs

    runs = _runs({("cosine", 200): [10.0, 10.5, 11.0]}).assign(classifier_is_mean=np.nan)
    assert variant_section([Dataset("d", runs)], {"dataset_options": {}}, "cosine") == ""
    configuration = {"dataset_options": {"d_x2": {"variant_of": "d"}}, "scoring": {"image_size": 8}}
    html = variant_section([Dataset("d", runs), Dataset("d_x2", runs)], configuration, "cosine")
    assert "scored at 8 x 8" in html and "d with cosine" in html
