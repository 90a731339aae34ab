"""The benchmarks: the peers train with our optimisation, the time-to-quality verdicts from known
numbers, and tiny runs end to end."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.utils import clip_grad_norm_
from torch.optim.optimizer import register_optimizer_step_pre_hook

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import peers  # noqa: E402
from peers import TrainingRun  # noqa: E402
from ttq_report import (  # noqa: E402
    MOMENT_COLUMNS,
    SUMMARY_COLUMNS,
    Evaluation,
    SystemResult,
    summary_rows,
    verdicts,
)

SYSTEMS = ("ours", "diffusers", "lucidrains")


def _result(name: str, rate: float, sample_ms: float, fids: list[float]) -> SystemResult:
    seconds = [30.0 * (i + 1) for i in range(len(fids))]
    run = TrainingRun(name, 1000, 10 * len(fids), seconds[-1], rate, 1.0, 0.1)
    evaluations = [
        Evaluation(
            seconds=s,
            steps=10 * (i + 1),
            fid=f,
            inception_score=2.0,
            sample_ms=sample_ms,
            sample_cpu_ms=sample_ms / 2,
        )
        for i, (s, f) in enumerate(zip(seconds, fids, strict=True))
    ]
    return SystemResult(run=run, evaluations=evaluations)


def test_time_to_the_faster_peers_fid_decides_the_quality_target():
    # diffusers trains faster than lucidrains, so its final FID (20) is the target; ours reaches
    # it at the second of three moments, 60 s of diffusers' 90 s: exactly 2/3, the target.
    results = [
        _result("ours", 100.0, 0.4, [40.0, 19.0, 10.0]),
        _result("diffusers", 120.0, 0.5, [50.0, 30.0, 20.0]),
        _result("lucidrains", 50.0, 1.0, [60.0, 15.0, 12.0]),
    ]
    rows = {row[0]: dict(zip(SUMMARY_COLUMNS, row, strict=True)) for row in summary_rows(results)}
    assert rows["ours"]["s_to_target_fid"] == "60.0"
    assert rows["ours"]["time_ratio"] == "0.67"
    assert rows["ours"]["img_per_s_ratio"] == "0.83"
    assert rows["ours"]["sample_ms_ratio"] == "0.80"
    assert rows["lucidrains"]["s_to_target_fid"] == "60.0"
    assert rows["diffusers"]["time_ratio"] == "1.00"
    quality, sampling = verdicts(results)
    assert "met: ours reached FID <= 20.00 after 60.0 s, 0.67 x diffusers's 90.0 s" in quality
    assert "not met" not in quality
    # Between the moments ours crosses FID 20 at 30 + 30 * 20/21 s = 58.6 s.
    assert "interpolated between them 58.6 s against 90.0 s, 0.65 x" in quality
    assert sampling.startswith("sampling: met")

    # One moment later is not good enough, and sampling slower than the peer fails its target.
    results[0] = _result("ours", 100.0, 0.6, [40.0, 25.0, 19.0])
    quality, sampling = verdicts(results)
    assert "not met: ours reached FID <= 20.00 after 90.0 s, 1.00 x" in quality
    assert sampling.startswith("sampling: not met")
    results[0] = _result("ours", 100.0, 0.6, [40.0, 25.0, 21.0])
    assert "ours never reached FID <= 20.00" in verdicts(results)[0]


def test_a_schedule_that_cannot_be_rescaled_to_T_is_refused_by_name(capsys):
    import time_to_quality

    with pytest.raises(SystemExit):
        time_to_quality.parse_args(["--T", "20"])
    assert "--T must be more than 20" in capsys.readouterr().err


def _table(lines: list[str], columns) -> dict[str, dict[str, str]]:
    """The rows (by system) of the table whose header is ``columns``; each row must be complete."""
    header = next(i for i, line in enumerate(lines) if line.split() == list(columns))
    rows = {}
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        values = line.split()
        assert len(values) == len(columns), line
        rows.setdefault(values[0], []).append(dict(zip(columns, values, strict=True)))
    return rows


@pytest.mark.slow
def test_tiny_budget_trains_every_system_and_prints_the_table(capsys, tmp_path):
    pytest.importorskip("diffusers")
    pytest.importorskip("denoising_diffusion_pytorch")
    import time_to_quality

    time_to_quality.main(
        [
            "--budget", "4", "--marks", "2", "--image-size", "8",
            "--T", "21", "--warmup-steps", "5", "--batch-size", "16", "--work-dir", str(tmp_path),
            "--samples", "50", "--classifier-epochs", "2",
        ]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert re.search(r"^CPU: .+; native bf16: (yes|no)", "\n".join(lines), re.MULTILINE)

    summary = _table(lines, SUMMARY_COLUMNS)
    assert set(summary) == set(SYSTEMS)
    for system in SYSTEMS:
        (row,) = summary[system]
        assert int(row["steps"]) > 10
        assert float(row["train_img_per_s"]) > 0
        assert float(row["sample_ms_per_img_step"]) > 0
        assert float(row["train_img_per_cpu_s"]) > 0
        assert float(row["fid"]) > 0

    moments = _table(lines, MOMENT_COLUMNS)
    for system in SYSTEMS:
        assert [row["moment"] for row in moments[system]] == ["1", "2"]
        steps = [int(row["steps"]) for row in moments[system]]
        assert 0 < steps[0] < steps[1]

    # Each system learned: its loss fell from its first steps to its last.
    for system in SYSTEMS:
        (line,) = [line for line in lines if line.startswith(f"{system}: mean training loss")]
        first, last = map(float, re.findall(r"\d+\.\d+", line))
        assert last < first, line
    assert any(line.startswith("same FID in <= 2/3") for line in lines)
    assert any(line.startswith("sampling: ") for line in lines)
    assert any(line.startswith("our loop: ") for line in lines)


def test_training_variants_tiny_run_prints_scores(capsys, tmp_path, one_thread):
    import json

    import training_variants

    training_variants.main(
        [
            "--steps", "4", "--T", "10", "--num-samples", "50", "--grad-clip", "0",
            "--variances", "beta,beta_tilde", "--workdir", str(tmp_path),
            "--classifier-epochs", "2",
        ]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["train_cpu_s"] >= 0
    real = result["real_training_images"]
    assert real["is"] > 1 and 0 < real["top_class_prob"] <= 1
    for key in ("beta", "beta_tilde"):
        assert set(result[key]) == set(real), key
    # After four steps the samples are noise: far from the real images.
    assert result["beta"]["fid"] > real["fid"]


def test_memory_format_prints_both_layouts_for_each_step(capsys, one_thread):
    import memory_format

    memory_format.main(["--models", "digits-8", "--steps", "2", "--repeats", "1"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[:3] for row in rows] == [
        ["digits-8", "fp32", "train"],
        ["digits-8", "fp32", "sample"],
    ]
    for row in rows:
        nchw, nhwc, ratio = map(float, row[3:])
        assert nchw > 0 and nhwc > 0 and ratio == pytest.approx(nhwc / nchw, abs=0.01)


def _optimisation_of_each_step(monkeypatch, train) -> list[tuple[str, float]]:
    """What ``train()`` gives each step, in order: the gradient clipping's norm, Adam's learning
    rate and the EMA's decay (as the library's loop and the peers' apply them)."""
    import ddpm.training.loop
    from ddpm.training.state import update_ema

    events = []

    def recording_clip(parameters, max_norm, *args, **kwargs):
        events.append(("clip", max_norm))
        return clip_grad_norm_(parameters, max_norm, *args, **kwargs)

    def recording_ema(ema, model, decay):
        events.append(("ema", decay))
        update_ema(ema, model, decay)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    monkeypatch.setattr(ddpm.training.loop, "update_ema", recording_ema)
    monkeypatch.setattr(peers, "update_ema", recording_ema)
    monkeypatch.setattr(peers, "_warm_up", lambda *args: None)  # untimed steps on a copy
    handle = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: events.append(("lr", optimizer.param_groups[0]["lr"]))
    )
    try:
        train()
    finally:
        handle.remove()
    return events


@pytest.mark.parametrize(
    "optimisation",
    [
        {"warmup_steps": 4, "lr_decay": "cosine", "grad_clip": 0.5, "ema_decay": 0.6},
        {"warmup_steps": 0, "lr_decay": "none", "grad_clip": None, "ema_decay": 0.9},
    ],
)
def test_the_peers_train_with_our_optimisation_step_for_step(
    optimisation, monkeypatch, tmp_path, one_thread
):
    # The comparison with the peers is fair only while their loop follows ours: a change to the
    # library's warm-up, decay, clipping or EMA must reach it.
    from ddpm.schedules import ScheduleSpec
    from ddpm.spec import RunSpec
    from ddpm.training.config import TrainingConfig
    from ddpm.training.loop import train
    from ddpm.unet import UNet
    from ddpm.unet_config import UNetConfig

    config = TrainingConfig(
        steps=12, batch_size=8, learning_rate=1e-2, checkpoint_every=12, log_every=12,
        device="cpu", precision="fp32", **optimisation,
    )  # fmt: skip
    unet = UNetConfig(image_size=8, base_channels=8, channel_mults=(1,), attention_levels=())
    spec = RunSpec(ScheduleSpec("linear", "linear", 10), {}, unet, config)
    images = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8)
    diffusion = spec.build()[0]

    ours = _optimisation_of_each_step(monkeypatch, lambda: train(images, spec, tmp_path))
    peer = _optimisation_of_each_step(
        monkeypatch,
        lambda: peers.train_peer(
            "peer", UNet(unet), diffusion.training_loss, images, config, [math.inf], 0
        ),
    )
    assert peer == ours
    kinds = [kind for kind, _ in ours]
    steps = config.steps * (3 if config.grad_clip else 2)
    assert len(ours) == steps and kinds.count("clip") == (config.steps if config.grad_clip else 0)
    rates = [value for kind, value in ours if kind == "lr"]
    assert len(set(rates)) > (1 if optimisation["warmup_steps"] else 0)
