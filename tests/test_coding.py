"""Seed 004's experiments on trained models: progressive coding (rate and distortion along the
reverse process, with the verdicts on Ho et al.'s claims), interpolation in the best cell, and
the verdict on the prediction target."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from training_helpers import UNET, small_config

from ddpm.coding import coding_shares, coding_table, rate_distortion, write_rate_distortion
from ddpm.data.prepare import prepare_dataset
from ddpm.data.store import load_split
from ddpm.diffusion import GaussianDiffusion, to_model_range
from ddpm.interpolation import best_cell_interpolation, load_interpolation, pick_pair
from ddpm.schedules import ScheduleSpec
from ddpm.spec import RunSpec
from ddpm.training.loop import train
from ddpm.verdicts import (
    CANNOT_TELL,
    DOES_NOT_HOLD,
    HOLDS,
    coding_summary,
    coding_verdicts,
    prediction_verdicts,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the table of one run ------------------------------------------------------------------------
def test_the_rate_is_cumulative_from_T_and_the_distortion_is_on_the_pixel_scale():
    # Two images, T = 3: terms L_0, L_1, L_2 per image, the prior L_3.
    bound = {
        "terms": torch.tensor([[1.0, 0.2, 0.05], [3.0, 0.4, 0.15]]),
        "prior": torch.tensor([0.01, 0.03]),
        "x0_mse": torch.tensor([[0.01, 0.16, 0.64], [0.03, 0.32, 0.96]]),
        "decoder_mse": torch.tensor([0.0001, 0.0003]),
    }
    bound["total"] = bound["terms"].sum(1) + bound["prior"]
    table = coding_table(bound, T=3)
    assert table["t"].tolist() == [3, 2, 1, 0]
    # x_3 costs the prior; x_2 also L_2; x_1 also L_1; the decoder's x_0 also L_0.
    expected_rate = [0.02, 0.02 + 0.1, 0.02 + 0.1 + 0.3, 0.02 + 0.1 + 0.3 + 2.0]
    np.testing.assert_allclose(table["rate_bits_per_dim"], expected_rate, rtol=1e-6)
    # RMSE over both images' pixels: the root of the mean of their per-image MSEs, x 127.5.
    expected_distortion = [127.5 * math.sqrt(m) for m in (0.8, 0.24, 0.02, 0.0002)]
    np.testing.assert_allclose(table["distortion_rmse"], expected_distortion, rtol=1e-6)
    assert table["t_over_T"].tolist() == [1.0, 2 / 3, 1 / 3, 0.0]
    assert (table["images"] == 2).all()


def _run_table(schedule: str, seed: int, T: int, rate_per_step, distortion) -> pd.DataFrame:
    """A run's table with the given rate spent by each step t = T..1, decoder included."""
    steps = np.arange(T, -1, -1)
    return pd.DataFrame(
        {
            "dataset": "digits",
            "schedule": schedule,
            "T": T,
            "seed": seed,
            "prediction": "eps",
            "t": steps,
            "rate_bits_per_dim": np.cumsum(rate_per_step),
            "distortion_rmse": distortion,
            "images": 4,
        }
    )


def test_shares_of_rate_and_distortion_follow_their_definitions():
    T = 20
    # The prior costs 1 bit, x_19..x_3 nothing, x_2 and x_1 4 bits each and the decoder's x_0
    # 11: 20 bits, 15 of them in the last tenth of the steps (x_2 to x_1 to x_0).
    rate = [1.0] + [0.0] * 17 + [4.0, 4.0, 11.0]
    distortion = np.linspace(100.0, 0.0, T + 1)
    shares = coding_shares(_run_table("linear", 0, T, rate, distortion)).iloc[0]
    assert shares["bound_bits_per_dim"] == pytest.approx(20.0)
    assert shares["prior_bits_per_dim"] == pytest.approx(1.0)
    assert shares["decoder_bits_per_dim"] == pytest.approx(11.0)
    assert shares["rate_share_last_steps"] == pytest.approx(15 / 20)
    assert shares["rate_share_first_steps"] == pytest.approx(1 / 20)
    assert shares["rate_share_first_step"] == 0.0  # x_T to x_19 cost nothing
    # Two of 20 steps take the distortion from 100 to 90.
    assert shares["distortion_removed_first_steps"] == pytest.approx(0.1)
    # 10 % of the rate (2 bits) is first reached halfway through step t = 2 (from 1 to 5 bits):
    # the distortion there is interpolated between 15 (t = 3) and 10 (t = 2).
    assert shares["distortion_removed_first_rate"] == pytest.approx(1 - 13.75 / 100)
    assert shares["distortion_at_T"] == 100.0 and shares["distortion_decoded"] == 0.0


def test_verdicts_on_ho_et_al_per_schedule_with_intervals_over_seeds():
    T = 20
    tables = []
    for seed in range(3):
        late = [1.0] + [0.0] * 17 + [4.0 + 0.1 * seed, 4.0, 11.0]  # most rate in the last tenth
        spread = [1.0] + [0.5 + 0.01 * seed] * 17 + [0.5, 0.5, 0.5]  # rate spread evenly
        steep = np.concatenate([[100.0], np.full(T, 5.0 + seed)])  # distortion falls at once
        tables.append(_run_table("late", seed, T, late, steep))
        tables.append(_run_table("spread", seed, T, spread, np.linspace(100.0, 0.0, T + 1)))
    shares = coding_shares(pd.concat(tables))
    verdicts = coding_verdicts(shares).set_index(["schedule", "claim"])["verdict"]
    rate_claim = "most of the rate goes to the last 10 % of the steps"
    distortion_claim = "most of the distortion is removed with the first 10 % of the rate"
    assert verdicts[("late", rate_claim)] == HOLDS
    assert verdicts[("late", distortion_claim)] == HOLDS
    assert verdicts[("spread", rate_claim)] == DOES_NOT_HOLD
    assert verdicts[("spread", distortion_claim)] == DOES_NOT_HOLD
    summary = coding_summary(shares)
    row = summary[(summary["schedule"] == "late") & (summary["quantity"] == "bound_bits_per_dim")]
    assert row["n"].item() == 3 and row["lo"].item() < row["mean"].item() < row["hi"].item()


# --- a trained model: the rule's library function ------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two one-seed 'cells' of a tiny model trained a few steps on the 8 x 8 digits."""
    root = tmp_path_factory.mktemp("study")
    data = root / "data.npz"
    prepare_dataset("digits", data, 8)
    images, _ = load_split(data, "train")
    schedule = ScheduleSpec("linear", "linear", 12, {"beta_start": 1e-3, "beta_end": 0.2})
    diffusion = GaussianDiffusion(schedule.build())
    models = {}
    for seed in (0, 1):
        run = root / "results" / "digits" / "runs" / f"linear-T12-seed{seed}"
        spec = RunSpec(schedule, {}, UNET, small_config(steps=4, seed=seed), dataset="digits")
        models[seed] = train(images[:64], spec, run)
    return {"data": data, "models": models, "diffusion": diffusion, "root": root}


def test_a_models_rate_distortion_table_is_its_bound(trained, tmp_path):
    model = trained["models"][0]
    out = tmp_path / "coding.csv"
    write_rate_distortion([model], trained["data"], [out], test_images=5, seed=3, device="cpu")
    table = pd.read_csv(out)
    assert table["t"].tolist() == list(range(12, -1, -1))
    assert table[["schedule", "T", "seed", "prediction"]].iloc[0].tolist() == [
        "linear",
        12,
        0,
        "eps",
    ]
    assert (np.diff(table["rate_bits_per_dim"]) >= 0).all()  # bits only accumulate
    # The last row is the whole bound of the same images with the same noise.
    from ddpm.checkpoints import load_model

    network, diffusion, _ = load_model(model)
    images, _ = load_split(trained["data"], "test")
    with torch.no_grad():
        bound = diffusion.variational_bound(
            network, to_model_range(images[:5]), generator=torch.Generator().manual_seed(3)
        )
    assert table["rate_bits_per_dim"].iloc[-1] == pytest.approx(bound["total"].mean().item())
    # The same call gives the same table.
    again = rate_distortion(model, images[:5], seed=3, device="cpu")
    pd.testing.assert_frame_equal(
        again.drop(columns="dataset"), table.drop(columns="dataset"), check_dtype=False
    )


def test_write_rate_distortion_refuses_mismatched_outputs(trained, tmp_path):
    with pytest.raises(ValueError, match="2 models but 1 output paths"):
        write_rate_distortion(list(trained["models"].values()), trained["data"], [tmp_path / "a"])
    with pytest.raises(ValueError, match="test_images must be a positive integer, got 0"):
        write_rate_distortion(
            [trained["models"][0]], trained["data"], [tmp_path / "a"], test_images=0
        )


# --- interpolation in the best cell --------------------------------------------------------------
def test_the_pair_is_two_different_digits():
    assert pick_pair(np.array([3, 3, 3, 7, 1])) == (0, 3)
    assert pick_pair(np.array([5, 5])) == (0, 1)


def test_interpolation_uses_the_best_cells_median_seed_and_is_repeatable(trained, tmp_path):
    metrics = tmp_path / "metrics.csv"
    # Both seeds are as far from the cell's median FID: the first is the median seed.
    pd.DataFrame(
        {
            "dataset": "digits",
            "schedule": "linear",
            "T": 12,
            "seed": [0, 1],
            "classifier_fid": [30.0, 10.0],
            "classifier_is_mean": [2.0, 2.0],
        }
    ).to_csv(metrics, index=False)
    floor = tmp_path / "floor.json"
    floor.write_text(json.dumps({"classifier_fid": 1.0, "classifier_is_mean": 9.0}))
    models = list(trained["models"].values())
    outputs = []
    for name in ("a.npz", "b.npz"):
        best_cell_interpolation(
            metrics,
            floor,
            models,
            trained["data"],
            tmp_path / name,
            [0.25, 1.0],
            device="cpu",
            precision="fp32",
        )
        outputs.append(load_interpolation(tmp_path / name))
    first, again = outputs
    assert first["t"].tolist() == [3, 12]
    assert first["images"].shape == (2, 9, 1, 8, 8) and first["images"].dtype == np.uint8
    assert first["lambdas"].tolist() == [i / 8 for i in range(9)]
    assert first["cell"].tolist() == ["linear", "12", "0"]
    for key in ("images", "sources"):
        np.testing.assert_array_equal(first[key], again[key])
    test_images, labels = load_split(trained["data"], "test")
    a, b = pick_pair(labels.numpy())
    np.testing.assert_array_equal(first["sources"], test_images[[a, b]].numpy())


# --- the prediction target -----------------------------------------------------------------------
def _prediction_runs(fid_by_target: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "schedule": f"cosine_{target}",
                "beta_schedule": "cosine",
                "T": 800,
                "seed": seed,
                "prediction": target,
                "classifier_fid": fid,
            }
            for target, fids in fid_by_target.items()
            for seed, fid in enumerate(fids)
        ]
    )


def test_eps_against_each_alternative_paired_by_seed():
    runs = _prediction_runs(
        {
            "eps": [10.0, 12.0, 14.0],
            "x0": [20.0, 22.5, 23.5],  # worse by 10 +- 0.5 in every pair
            "v": [9.0, 13.0, 13.5],  # differences -1, +1, -0.5: no sign
            "mu": [5.0, 6.0, 8.5],  # better in every pair
        }
    )
    verdicts = prediction_verdicts(runs).set_index("claim")["verdict"]
    assert verdicts["predicting eps gives better samples (lower FID) than predicting x0"] == HOLDS
    assert verdicts["predicting eps gives better samples (lower FID) than predicting v"] == (
        CANNOT_TELL
    )
    assert verdicts["predicting eps gives better samples (lower FID) than predicting mu"] == (
        DOES_NOT_HOLD
    )
    assert verdicts["predicting eps gives better samples than every alternative"] == DOES_NOT_HOLD
    worse_alone = runs[runs["prediction"].isin(["eps", "x0", "v"])]
    overall = prediction_verdicts(worse_alone).set_index("claim")["verdict"]
    assert overall["predicting eps gives better samples than every alternative"] == CANNOT_TELL


# --- the figures ----------------------------------------------------------------------------------
def test_the_rate_distortion_figure_has_one_line_per_schedule_and_bands_over_seeds(tmp_path):
    from ddpm.plots.coding import draw_rate_distortion

    T = 10
    paths = []
    for schedule in ("linear", "cosine"):
        for seed in range(2):
            rate = [0.01] + [0.1 + 0.01 * seed] * (T - 1) + [1.0]
            table = _run_table(schedule, seed, T, rate, np.linspace(90.0, 1.0, T + 1))
            paths.append(tmp_path / f"{schedule}-T{T}-seed{seed}.csv")
            table.to_csv(paths[-1], index=False)
    figure = draw_rate_distortion(paths)
    against_rate, rate_axis, distortion_axis = figure.axes
    assert [line.get_label() for line in against_rate.lines] == ["linear, T = 10", "cosine, T = 10"]
    # Per schedule a line (the mean over seeds) and a band (its interval) against the steps.
    assert len(rate_axis.lines) == 2 and len(rate_axis.collections) == 2
    xs = rate_axis.lines[0].get_xdata()
    assert xs[0] == 0.0 and xs[-1] == 1.0 and len(xs) == T + 1
    mean_rate = rate_axis.lines[0].get_ydata()
    assert mean_rate[-1] == pytest.approx(np.sum([0.01] + [0.105] * (T - 1) + [1.0]))
