"""The answer table's verdicts on runs tables whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ddpm.verdicts import (
    CANNOT_TELL,
    DOES_NOT_HOLD,
    HOLDS,
    best_cell,
    best_schedule_per_T,
    claim_verdicts,
    effect_verdict,
    sign_verdict,
    slopes_over_log_T,
)

SCHEDULES = ("linear", "cosine", "sigmoid")
T_VALUES = (50, 100, 200, 400, 800)


def grid(fid, loss=lambda schedule, t, seed, rng: 0.05, seeds=3, noise=0.0, seed_of_rng=0):
    """A runs table: ``fid(schedule, T, seed, rng)`` and ``loss(...)`` give each run's values."""
    rng = np.random.default_rng(seed_of_rng)
    rows = []
    for schedule in SCHEDULES:
        for t in T_VALUES:
            for seed in range(seeds):
                value = fid(schedule, t, seed, rng)
                rows.append(
                    {
                        "dataset": "d",
                        "schedule": schedule,
                        "T": t,
                        "seed": seed,
                        "classifier_fid": value,
                        "classifier_kid_mean": value / 100,
                        "classifier_is_mean": 9.0 - value / 10,
                        "final_loss": loss(schedule, t, seed, rng),
                    }
                )
    return pd.DataFrame(rows)


def _verdict(table: pd.DataFrame, start: str) -> str:
    (row,) = table[table["claim"].str.startswith(start)].itertuples()
    return row.verdict


def test_verdict_rules():
    assert sign_verdict(0.1, 0.5) == HOLDS
    assert sign_verdict(-0.5, -0.1) == DOES_NOT_HOLD
    assert sign_verdict(-0.1, 0.5) == CANNOT_TELL
    assert sign_verdict(-0.5, -0.1, claimed_sign=-1) == HOLDS
    assert sign_verdict(float("nan"), float("nan")) == CANNOT_TELL
    assert effect_verdict(-0.5, 0.5, margin=1.0) == HOLDS
    assert effect_verdict(2.0, 3.0, margin=1.0) == DOES_NOT_HOLD
    assert effect_verdict(0.5, 3.0, margin=1.0) == CANNOT_TELL


def test_a_steep_slope_in_T_means_T_matters():
    # FID falls by 10 per doubling of T, with a little seed noise.
    runs = grid(lambda s, t, seed, rng: 100 - 10 * np.log2(t) + rng.normal(0, 1))
    slopes = slopes_over_log_T(runs, "classifier_fid")
    assert slopes["slope"].to_numpy() == pytest.approx([-10] * 3, abs=1.0)
    assert (slopes["hi"] < 0).all() and (slopes["n"] == 15).all()
    verdicts = claim_verdicts(runs)
    assert _verdict(verdicts, "T has little effect") == DOES_NOT_HOLD


def test_equal_means_cannot_be_told_apart():
    # Every cell has the same mean; only seed noise, large against the 10 % margin.
    runs = grid(
        lambda s, t, seed, rng: 20 + rng.normal(0, 6),
        loss=lambda s, t, seed, rng: 0.05 + rng.normal(0, 0.01),
    )
    verdicts = claim_verdicts(runs)
    assert _verdict(verdicts, "T has little effect") == CANNOT_TELL
    assert _verdict(verdicts, "sigmoid's loss") == CANNOT_TELL
    assert _verdict(verdicts, "cosine's images") == CANNOT_TELL
    assert list(verdicts.columns) == ["claim", "verdict", "numbers", "rule"]
    assert all(verdicts["rule"].str.len() > 20)


def test_flat_and_precise_values_hold_and_clear_differences_are_found():
    runs = grid(
        # cosine clearly worse at small T, nothing changes with T otherwise
        lambda s, t, seed, rng: 20 + (15 if s == "cosine" and t <= 100 else 0) + rng.normal(0, 0.1),
        loss=lambda s, t, seed, rng: 0.05 + (0.004 if s == "sigmoid" else 0) + rng.normal(0, 1e-4),
    )
    verdicts = claim_verdicts(runs)
    assert _verdict(verdicts, "the loss is nearly the same") == HOLDS
    assert _verdict(verdicts, "sigmoid's loss") == HOLDS
    assert _verdict(verdicts, "cosine's images") == HOLDS
    # cosine's FID drops by 15 from T=100 to 200: more than 10 % of its mean over the range.
    assert _verdict(verdicts, "T has little effect") == DOES_NOT_HOLD
    numbers = verdicts.set_index("claim")["numbers"]
    assert "sigmoid − linear" in numbers.iloc[1] and "(n = 15)" in numbers.iloc[1]


def test_sigmoid_better_contradicts_the_claim():
    runs = grid(
        lambda s, t, seed, rng: 20.0 + rng.normal(0, 1),
        loss=lambda s, t, seed, rng: 0.05 - (0.004 if s == "sigmoid" else 0) + rng.normal(0, 1e-4),
    )
    assert _verdict(claim_verdicts(runs), "sigmoid's loss") == DOES_NOT_HOLD


def test_loss_that_ranks_fid_contradicts_does_not_predict():
    runs = grid(
        lambda s, t, seed, rng: 10 + 5 * SCHEDULES.index(s) + np.log2(t) + rng.normal(0, 0.1),
        loss=lambda s, t, seed, rng: 0.01 * (10 + 5 * SCHEDULES.index(s) + np.log2(t)),
    )
    assert _verdict(claim_verdicts(runs), "the loss does not predict") == DOES_NOT_HOLD
    unrelated = grid(
        lambda s, t, seed, rng: 20 + rng.normal(0, 1),
        loss=lambda s, t, seed, rng: 0.05 + rng.normal(0, 0.01),
        seed_of_rng=3,
    )
    verdict = _verdict(claim_verdicts(unrelated), "the loss does not predict")
    assert verdict in (HOLDS, CANNOT_TELL)
    # Four cells (2 schedules x 2 T) give no verdict, however perfect their ranking.
    few = runs[runs["schedule"].isin(["linear", "cosine"]) & runs["T"].isin([50, 100])]
    assert _verdict(claim_verdicts(few), "the loss does not predict") == CANNOT_TELL


def test_best_schedule_per_T_and_overlap():
    runs = grid(
        lambda s, t, seed, rng: {"linear": 10, "cosine": 30, "sigmoid": 10.5}[s] + rng.normal(0, 1)
    )
    best = best_schedule_per_T(runs, "classifier_fid")
    assert list(best["T"]) == list(T_VALUES)
    assert set(best["best"]) <= {"linear", "sigmoid"}
    assert best["overlap"].all()  # linear and sigmoid are within noise of each other
    apart = grid(
        lambda s, t, seed, rng: {"linear": 10, "cosine": 30, "sigmoid": 50}[s] + rng.normal(0, 1)
    )
    best = best_schedule_per_T(apart, "classifier_fid")
    assert (best["best"] == "linear").all() and (best["runner_up"] == "cosine").all()
    assert not best["overlap"].any()


def test_best_cell_and_the_quality_bars():
    runs = grid(lambda s, t, seed, rng: 5.0 if (s, t) == ("sigmoid", 200) else 30.0 + seed)
    floor = {"classifier_fid": 2.0, "classifier_is_mean": 9.0, "n_generated": 200}
    best = best_cell(runs, floor)
    assert (best["schedule"], best["T"]) == ("sigmoid", 200)
    assert best["fid"]["mean"] == pytest.approx(5.0) and best["fid_bar"] == pytest.approx(6.0)
    assert best["passes_fid"] and best["is_bar"] == pytest.approx(7.2)
    assert best["is"]["mean"] == pytest.approx(8.5) and best["passes_is"]
    worse = best_cell(runs, {**floor, "classifier_fid": 1.0})
    assert not worse["passes_fid"]
    with pytest.raises(ValueError, match="score the runs"):
        best_cell(runs.drop(columns="classifier_fid").assign(classifier_fid=np.nan), floor)
