"""The run spec: built once from the study config, recorded with the run, read back."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm import ConfigError
from ddpm.checkpoints import load_model
from ddpm.diffusion import GaussianDiffusion
from ddpm.schedules import ScheduleSpec, make_schedule
from ddpm.spec import RunSpec
from ddpm.training.config import TrainingConfig
from ddpm.training.loop import train
from ddpm.unet_config import UNetConfig
from ddpm.workflow.config_load import resolve_config

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def study():
    return resolve_config(REPO / "config" / "config.yaml")


def test_schedule_spec_round_trips_and_compares_by_value():
    spec = ScheduleSpec("lin", "linear", 40, {"beta_end": 0.01, "beta_start": 1e-5})
    assert ScheduleSpec.from_dict(spec.to_dict()) == spec
    # The order parameters are given in does not matter; the spec is hashable.
    same = ScheduleSpec("lin", "linear", 40, {"beta_start": 1e-5, "beta_end": 0.01})
    assert same == spec and hash(same) == hash(spec)
    assert spec.to_dict() == {
        "label": "lin",
        "beta_schedule": "linear",
        "T": 40,
        # every parameter, the defaults filled in: the spec says all that decides the betas
        "params": {"beta_end": 0.01, "beta_start": 1e-5, "rescale_to_T": False},
    }
    assert ScheduleSpec("lin", "linear", 40, {"beta_end": 0.02}) != spec
    with pytest.raises(ConfigError, match="no parameter 'beta_stop'"):
        ScheduleSpec("lin", "linear", 40, {"beta_stop": 0.01})


def test_schedule_spec_builds_the_schedule_make_schedule_builds():
    spec = ScheduleSpec("scaled", "linear", 50, {"beta_end": 0.01, "rescale_to_T": True})
    built = spec.build()
    expected = make_schedule("linear", 50, beta_end=0.01, rescale_to_T=True)
    np.testing.assert_array_equal(built.betas, expected.betas)
    assert built.label == "scaled" and built.params == expected.params
    assert built.describe() == {**expected.describe(), "label": "scaled"}


def test_schedule_spec_without_a_label_is_named_by_its_formula():
    assert ScheduleSpec.from_dict({"beta_schedule": "cosine", "T": 10}).label == "cosine"
    with pytest.raises(ConfigError, match="'T'"):
        ScheduleSpec.from_dict({"beta_schedule": "cosine"})
    with pytest.raises(ConfigError, match="beta_schedule"):
        ScheduleSpec.from_definition("x", {"params": {}}, 10)


def test_run_spec_from_the_study_config_builds_what_the_training_script_built(study):
    spec = RunSpec.from_study_config(study, "digits", "sigmoid", 100, 2, (1, 8, 8), num_threads=1)
    diffusion, unet_config, training = spec.build()
    definition = study["schedules"]["sigmoid"]
    schedule = make_schedule("sigmoid", 100, **definition["params"])
    expected = GaussianDiffusion(schedule, **study["diffusion"])
    np.testing.assert_array_equal(diffusion.schedule.betas, expected.schedule.betas)
    assert (diffusion.variance, diffusion.loss, diffusion.clip_denoised) == (
        expected.variance,
        expected.loss,
        expected.clip_denoised,
    )
    assert unet_config == UNetConfig.from_dict(
        {**study["model"], "image_channels": 1, "image_size": 8}
    )
    assert training == TrainingConfig(**study["training"], seed=2, num_threads=1)
    assert spec.seed == 2 and spec.dataset == "digits" and spec.schedule.label == "sigmoid"


def test_run_spec_round_trips_through_its_dict_and_json(study):
    spec = RunSpec.from_study_config(study, "digits", "cosine", 50, 1, (1, 8, 8))
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ConfigError, match="unet"):
        RunSpec.from_dict({"schedule": {}, "diffusion": {}, "training": {}})


def test_a_record_of_another_format_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="train the run again"):
        RunSpec.from_dict({"schedule": {}, "unet": {}, "training": {}})
    old = _tiny_spec("lin-short", 4).to_dict()
    old["unet"]["attention_resolutions"] = [4]  # a key this library never writes
    with pytest.raises(ConfigError, match="attention_resolutions"):
        RunSpec.from_dict(old)


def test_a_schedule_label_may_change_the_diffusion_options_of_its_runs(study):
    # The prediction study compares targets as labels of one schedule (config/prediction.yaml).
    config = {
        **study,
        "schedules": {
            **study["schedules"],
            "cosine_v": {**study["schedules"]["cosine"], "diffusion": {"prediction": "v"}},
        },
    }
    plain = RunSpec.from_study_config(config, "digits", "cosine", 50, 0, (1, 8, 8))
    spec = RunSpec.from_study_config(config, "digits", "cosine_v", 50, 0, (1, 8, 8))
    assert dict(spec.diffusion) == {**study["diffusion"], "prediction": "v"}
    assert spec.build()[0].prediction == "v"
    assert plain.build()[0].prediction == "eps" and dict(plain.diffusion) == study["diffusion"]
    assert spec.schedule.build().params == plain.schedule.build().params


def test_a_model_file_records_what_its_network_predicts(tmp_path):
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator())
    spec = _tiny_spec("lin", 1)
    spec = dataclasses.replace(spec, diffusion={**dict(spec.diffusion), "prediction": "x0"})
    train(images, spec, tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["diffusion"]["prediction"] == "x0"
    _, diffusion, record = load_model(tmp_path / "model.pt")
    assert diffusion.prediction == "x0" and record["diffusion"]["prediction"] == "x0"


def _tiny_spec(label: str, steps: int) -> RunSpec:
    return RunSpec(
        schedule=ScheduleSpec(label, "linear", 10, {"beta_start": 1e-3, "beta_end": 0.2}),
        diffusion={"variance": "beta", "loss": "mse", "clip_denoised": True, "prediction": "eps"},
        unet=UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2), attention_levels=(1,)),
        training=TrainingConfig(
            steps=steps,
            batch_size=4,
            checkpoint_every=2,
            log_every=1,
            device="cpu",
            precision="fp32",
        ),
        dataset="random",
    )


def test_the_label_is_recorded_and_a_renamed_schedule_resumes(tmp_path):
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator())
    train(images, _tiny_spec("first-name", 2), tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["schedule"]["label"] == "first-name" and record["dataset"] == "random"
    _, _, stored = load_model(tmp_path / "model.pt")
    # The record holds the spec, every parameter of the schedule with its defaults filled in.
    spec = _tiny_spec("first-name", 2)
    assert dict(spec.schedule.params) == spec.schedule.build().params
    assert RunSpec.from_dict(stored) == spec
    # The label names the schedule but does not change the weights: renamed, the run resumes.
    train(images, _tiny_spec("second-name", 4), tmp_path)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["resumed_from_step"] == 2 and record["schedule"]["label"] == "second-name"
