"""The closeness experiment in log-SNR terms: more images through the same noise, the predicted
band entry (checked against simulation, not against the study's own curves), the collapse
verdict and the check of resolution-shifted schedules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ddpm.analysis.band_entry import (
    closeness_sd,
    collapse_verdicts,
    crossing_alpha_bar,
    expected_closeness,
    first_passage,
    predict_band_entry,
)
from ddpm.analysis.closeness import batch_closeness, pure_noise_closeness
from ddpm.analysis.closeness_study import (
    closeness_image,
    closeness_study,
    closeness_table,
    shift_spread,
)
from ddpm.analysis.forward import load_digit
from ddpm.analysis.thesis import closest_points
from ddpm.data.resize import resize_images
from ddpm.schedules import ScheduleSpec

SPECS = [
    ScheduleSpec("linear", "linear", 200, {"beta_start": 1.0e-4, "beta_end": 0.04}),
    ScheduleSpec("cosine", "cosine", 200, {"s": 0.008}),
]


@pytest.fixture(scope="module")
def small_study():
    return closeness_study(
        SPECS, "china.jpg", image_sizes=(8, 16), batch_size=12, noise_repeats=40,
        other_images=("digit",),
    )  # fmt: skip


def _image(name: str, size: int) -> np.ndarray:
    return closeness_image(name, size).astype(np.float64) / 127.5 - 1.0


@pytest.mark.parametrize("reading", ["copies", "pixels"])
def test_expected_closeness_of_pure_noise_is_the_noise_mean(reading):
    runs = pure_noise_closeness(20, 64, repeats=300, seed=1)
    measured = runs[f"closeness_{reading}"].mean()
    # within 2 %: the copies entries are taken as Gaussian, which at D = 64 is 1 % high
    assert expected_closeness(reading, 0.0, 64, 20, 0.3) == pytest.approx(measured, rel=0.02)


@pytest.mark.parametrize("alpha_bar", [0.05, 0.3])
def test_expected_closeness_and_its_spread_match_simulation(alpha_bar):
    # Independent of the study's curves: many fresh batches at one alpha_bar.
    x0, n = _image("china.jpg", 8), 20
    s2 = float(np.var(x0, ddof=1))
    rng = np.random.default_rng(3)
    draws = np.array(
        [batch_closeness(x0, rng.standard_normal((n, 64)), alpha_bar)[0][0] for _ in range(400)]
    )
    noise_sd = pure_noise_closeness(n, 64, repeats=300, seed=2, pixels=False)[
        "closeness_copies"
    ].std(ddof=1)
    assert draws.mean() == pytest.approx(
        expected_closeness("copies", alpha_bar, 64, n, s2), rel=0.02
    )
    predicted_sd = closeness_sd("copies", alpha_bar, noise_sd, 64, n, s2)
    assert draws.std(ddof=1) == pytest.approx(predicted_sd, rel=0.2)


def test_the_level_meets_the_band_edge():
    a = crossing_alpha_bar("copies", 0.2, 64, 20, 0.35)
    assert 0 < a < 1 and expected_closeness("copies", a, 64, 20, 0.35) == pytest.approx(0.2)
    assert math.isnan(crossing_alpha_bar("copies", 10.0, 64, 20, 0.35))  # never that high


def test_first_passage_is_the_geometric_law_for_a_constant_chance():
    # Inside with probability 0.2 at every step: P(entered by t) = 1 - 0.8^t.
    expected, sd = np.zeros(100), np.ones(100)
    low, high = -0.2533471031357997, 0.2533471031357997  # P(|Z| <= 0.2533) = 0.2
    steps = first_passage(expected, sd, low, high, quantiles=(0.2, 0.5, 0.9))
    assert steps == [1.0, 4.0, 11.0]  # 1 - 0.8^t first reaches 0.2, 0.5, 0.9 at t = 1, 4, 11
    assert math.isnan(first_passage(expected + 50, sd, low, high, quantiles=(0.5,))[0])


def test_other_images_leave_the_first_images_rows_as_they_were(small_study):
    alone = closeness_table(
        SPECS, "china.jpg", image_sizes=(8, 16), batch_size=12, noise_repeats=40
    )
    table = small_study.table
    first = table[table["photo"] == "china.jpg"].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, alone)
    digit = table[table["photo"] == "digit"].reset_index(drop=True)
    # the pixels reading never sees the image: the same noise gives the same values
    assert np.array_equal(digit["closeness_pixels"], first["closeness_pixels"], equal_nan=True)
    assert not np.allclose(digit["closeness_copies"], first["closeness_copies"], equal_nan=True)


def test_the_digit_is_enlarged_by_nearest_neighbour():
    assert np.array_equal(
        closeness_image("digit", 16), resize_images(load_digit()[None, None], 16, "nearest")[0, 0]
    )
    with pytest.raises(ValueError, match="multiple of 8"):
        closeness_image("digit", 12)


def test_predictions_sit_next_to_the_measured_entry(small_study):
    closest = predict_band_entry(small_study.table, closest_points(small_study.table))
    for reading in ("copies", "pixels"):
        assert (
            closest[f"predicted_t_enter_low_{reading}"]
            .le(closest[f"predicted_t_enter_{reading}"])
            .all()
        )
        assert (
            closest[f"predicted_t_enter_{reading}"]
            .le(closest[f"predicted_t_enter_high_{reading}"])
            .all()
        )
        # the level is the image's, whatever the schedule
        per_image = closest.groupby(["photo", "image_size"])[f"predicted_log_snr_level_{reading}"]
        assert (per_image.nunique() == 1).all()
        smallest = closest[closest["image_size"] == 8][f"predicted_shift_from_smallest_{reading}"]
        assert (smallest == 0).all()
        assert closest[f"predicted_pass_{reading}"].isin([True, False]).all()
    passed = closest[closest["predicted_pass_copies"]]
    inside = passed["t_enter_copies"].between(
        passed["predicted_t_enter_low_copies"] - 1, passed["predicted_t_enter_high_copies"] + 1
    )
    assert inside.all() and (passed["predicted_miss_steps_copies"] == 0).all()


def test_shift_check_rules(small_study):
    shifted = small_study.shifted
    at_8 = shifted[shifted["image_size"] == 8]
    # at the smallest size every rule shifts by 0: the same entry as unshifted
    assert (at_8["shift"] == 0).all()
    assert (at_8.groupby(["photo", "schedule"])["t_enter_copies"].nunique() == 1).all()
    simple = shifted[(shifted["shift_rule"] == "simple_diffusion") & (shifted["image_size"] == 16)]
    assert np.allclose(simple["shift"], -2 * math.log(2))
    spread = shift_spread(shifted)
    assert {"t_over_T_8", "t_over_T_16", "spread_t_over_T"} <= set(spread.columns)


def test_collapse_verdict_compares_the_spread_with_the_tolerance():
    rows = []
    for schedule, entry in (("a", -1.0), ("b", -1.1), ("c", -1.5)):
        rows.append(
            {
                "photo": "p", "image_size": 8, "schedule": schedule, "T": 100,
                "t_enter_copies": 50, "log_snr_enter_copies": entry, "log_snr_step_copies": 0.01,
                "predicted_log_snr_enter_low_copies": entry + 0.1,
                "predicted_log_snr_enter_high_copies": entry - 0.1,
                "t_enter_pixels": math.nan, "log_snr_enter_pixels": math.nan,
            }
        )  # fmt: skip
    verdicts = collapse_verdicts(pd.DataFrame(rows))
    assert len(verdicts) == 1  # the pixels reading was not computed
    row = verdicts.iloc[0]
    assert row["spread_log_snr"] == pytest.approx(0.5) and row[
        "tolerance_log_snr"
    ] == pytest.approx(0.21)
    assert not row["collapses"]


def test_log_snr_figure_has_a_panel_per_size_and_image(small_study, tmp_path):
    from ddpm.workflow.figures import draw_figure

    path = tmp_path / "closeness.csv"
    small_study.table.to_csv(path, index=False)
    figure = draw_figure("closeness_vs_log_snr", {"closeness": str(path)})
    # china.jpg and the digit in the copies reading, then the pixels reading: 3 rows x 2 sizes
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "china.jpg, 8x8", "china.jpg, 16x16", "digit, 8x8", "digit, 16x16",
        "pixels, 8x8", "pixels, 16x16",
    ]  # fmt: skip
    empty = small_study.table.assign(closeness_copies=np.nan, closeness_pixels=np.nan)
    with pytest.raises(ValueError, match="no closeness values"):
        from ddpm.plots.log_snr import plot_closeness_vs_log_snr

        plot_closeness_vs_log_snr(empty)
