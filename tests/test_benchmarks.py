"""The time-to-quality benchmark: its verdicts from known numbers, and a tiny run end to end."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from budget_training import TrainingRun  # noqa: E402
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
            "--budget", "5", "--marks", "2", "--samples", "20", "--image-size", "8",
            "--T", "25", "--warmup-steps", "5", "--batch-size", "16", "--work-dir", str(tmp_path),
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


def test_training_variants_lib_profile_is_the_librarys_ema():
    import training_variants

    from ddpm.training.config import TrainingConfig
    from ddpm.training.state import ema_decay

    config = TrainingConfig(steps=5000, ema_decay=0.995)
    # The library decays with the number of steps done before the update (0-based).
    for step in (1, 2, 10, 100, 600, 5000):
        assert training_variants._decay("lib", step, 0.995) == pytest.approx(
            ema_decay(config, step - 1)
        )
    assert training_variants._decay("p3", 600, 0.995) == pytest.approx((1 - 1 / 600) ** 4)


def test_training_variants_stratified_t_covers_every_stratum():
    import torch
    import training_variants

    from ddpm.diffusion import GaussianDiffusion
    from ddpm.schedules import make_schedule

    diffusion = GaussianDiffusion(make_schedule("linear", 50, beta_start=1e-4, beta_end=0.02))
    generator = torch.Generator().manual_seed(0)
    t = training_variants._timesteps(diffusion, 50, True, generator)
    assert sorted(t.tolist()) == list(range(1, 51))  # one t per 1/50 of [1, T]
    t = training_variants._timesteps(diffusion, 10, True, generator)
    assert sorted((t - 1).div(5, rounding_mode="floor").tolist()) == list(range(10))


def test_training_variants_tiny_run_prints_scores(capsys, tmp_path, one_thread):
    import json

    import training_variants

    training_variants.main(
        [
            "--steps", "4", "--T", "10", "--num-samples", "20", "--emas", "lib,p3",
            "--variances", "beta,beta_tilde", "--workdir", str(tmp_path),
            "--classifier-epochs", "2",
        ]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["train_cpu_s"] >= 0
    real = result["real_training_images"]
    assert real["is"] > 1 and 0 < real["top_class_prob"] <= 1
    for key in ("lib:beta", "lib:beta_tilde", "p3:beta", "p3:beta_tilde"):
        assert set(result[key]) == set(real), key
    # After four steps the samples are noise: far from the real images.
    assert result["lib:beta"]["fid"] > real["fid"]


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
