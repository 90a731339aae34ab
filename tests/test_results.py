"""The per-cell table every figure and the answer table read."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ddpm.results import cell_summary


def test_cell_summary_separates_the_seed_spread_from_the_sample_spread():
    runs = pd.DataFrame(
        {
            "dataset": "d",
            "schedule": ["linear"] * 4 + ["cosine"],
            "T": [50, 50, 50, 50, 50],
            "seed": [0, 1, 2, 3, 0],
            "classifier_fid": [10.0, 12.0, 11.0, 13.0, 30.0],
            "classifier_fid_boot_sd": [1.0, 1.0, 2.0, 2.0, 0.5],
        }
    )
    cells = cell_summary(runs, ["classifier_fid", "not_a_column"]).set_index("schedule")
    linear = cells.loc["linear"]
    assert linear["n"] == 4 and linear["mean"] == pytest.approx(11.5)
    lo, hi = scipy_stats.t.interval(0.95, 3, loc=11.5, scale=scipy_stats.sem([10, 12, 11, 13]))
    assert (linear["lo"], linear["hi"]) == pytest.approx((lo, hi))
    assert linear["sample_sd"] == pytest.approx(math.sqrt(2.5))  # root mean square of 1, 1, 2, 2
    assert linear["sample_half"] == pytest.approx(scipy_stats.t.ppf(0.975, 3) * math.sqrt(2.5) / 2)
    cosine = cells.loc["cosine"]  # one seed: a mean, no interval
    assert cosine["n"] == 1 and math.isnan(cosine["lo"]) and math.isnan(cosine["sample_half"])
    assert set(cells["metric"]) == {"classifier_fid"}


def test_cell_summary_without_bootstrap_columns_has_no_sample_spread():
    runs = pd.DataFrame(
        {"dataset": "d", "schedule": "linear", "T": 50, "seed": [0, 1], "m": [1.0, 2.0]}
    )
    (row,) = cell_summary(runs, ["m"]).itertuples()
    assert row.n == 2 and np.isnan(row.sample_sd)
