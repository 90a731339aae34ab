"""One precision per study and kind of machine: decided once with a margin, recorded, taken by
every training and sampling job on that kind of machine, and not taken on another kind."""

from __future__ import annotations

import itertools
import json
import logging

import pytest
import torch
from training_helpers import IMAGES, UNET, run_spec, small_config

from ddpm import runtime, study_precision
from ddpm.study_precision import (
    STUDY_BF16_MIN_SPEEDUP,
    decide_study_precision,
    machine_kind,
    read_decision,
    recorded_choice,
    write_decision,
)
from ddpm.training.loop import train

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_choices(monkeypatch):
    monkeypatch.setattr(runtime, "_timed_choices", {})


def noisy_timings(monkeypatch, speedups):
    """A CPU with native bf16 whose timed passes give these fp32/bf16 ratios, in turn."""
    monkeypatch.setattr(runtime, "cpu_bf16_support", lambda: (True, "AVX512_BF16"))
    monkeypatch.setattr(study_precision, "cpu_bf16_support", lambda: (True, "AVX512_BF16"))
    ratios = itertools.cycle(speedups)
    pending: dict = {}

    def seconds(model, inputs, device, precision):
        if precision == "fp32":
            pending["ratio"] = next(ratios)
            return pending["ratio"]
        return 1.0

    monkeypatch.setattr(runtime, "_seconds_per_pass", seconds)


def decide(**overrides):
    settings = dict(
        train_batch_size=8,
        sample_batch_size=8,
        train_precision="auto",
        sample_precision="auto",
        device=CPU,
        T=10,
    )
    return decide_study_precision(UNET, **{**settings, **overrides})


def test_jobs_timing_alone_would_disagree_but_the_study_decides_once(monkeypatch, tmp_path):
    # Ratios around the single-job threshold (1.1), as measured on a shared machine.
    noisy_timings(monkeypatch, [1.3, 1.02, 1.15, 1.05, 1.25, 1.01, 1.12])
    model = torch.nn.Conv2d(1, 1, 3)
    example = (torch.zeros(2, 1, 8, 8),)
    alone = {
        runtime.choose_precision("auto", CPU, model, example, cache=False).precision
        for _ in range(7)
    }
    assert alone == {"bf16", "fp32"}, "the timings flip a job's own choice"

    decision = decide()
    path = write_decision(tmp_path / "precision.json", decision)
    # The median of 7 rounds (1.12) is under the study's margin: fp32, for every cell.
    assert decision["train"]["precision"] == decision["sample"]["precision"] == "fp32"
    assert "median of 7 rounds" in decision["train"]["reason"]
    choices = {recorded_choice(read_decision(path), "train", CPU, path) for _ in range(45)}
    assert len(choices) == 1
    (choice,) = choices
    assert choice.precision == "fp32" and "decided once for the study" in choice.reason


def test_bf16_wins_a_study_only_by_the_margin(monkeypatch):
    noisy_timings(monkeypatch, [STUDY_BF16_MIN_SPEEDUP + 0.3])
    decision = decide(sample_precision="fp32")
    assert decision["train"]["precision"] == "bf16"
    assert decision["sample"] == {"precision": "fp32", "reason": "fp32 was requested"}


def test_without_native_bf16_the_study_trains_in_fp32_without_timing(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_support", lambda: (False, "AVX2"))
    monkeypatch.setattr(study_precision, "cpu_bf16_support", lambda: (False, "AVX2"))
    monkeypatch.setattr(runtime, "_seconds_per_pass", pytest.fail)
    decision = decide()
    assert decision["machine"]["native_bf16"] is False
    assert decision["train"]["precision"] == "fp32"
    assert "no native bf16 (AVX2)" in decision["train"]["reason"]


def test_another_kind_of_machine_decides_for_itself(caplog):
    decision = {
        "machine": {**machine_kind(CPU), "model": "Another CPU"},
        "train": {"precision": "bf16", "reason": "measured there"},
        "sample": {"precision": "bf16", "reason": "measured there"},
    }
    with caplog.at_level(logging.WARNING, logger="ddpm.study_precision"):
        assert recorded_choice(decision, "train", CPU) is None
    assert "decides for itself" in caplog.text and "Another CPU" in caplog.text
    with pytest.raises(ValueError, match="kind"):
        recorded_choice(decision, "score", CPU)


def test_training_takes_the_studys_precision_and_records_why(tmp_path):
    choice = runtime.PrecisionChoice("fp32", "auto: measured once (decided once for the study)")
    config = small_config(steps=2, checkpoint_every=2, precision="auto")
    train(IMAGES(), run_spec(config), tmp_path, precision_choice=choice)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["precision"] == "fp32"
    assert record["precision_reason"] == choice.reason
