"""The Snakemake workflow: configs are checked before any job runs, the shipped configs dry-run,
and a tiny study runs end to end, is then up to date, and reruns what a library edit affects."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from ddpm.workflow.config_load import resolve_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(*args, cwd=REPO, check=True, timeout=900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def write_config(tmp_path: Path, change) -> Path:
    """The tiny config in full (merged onto the default), changed; run it with
    --replace-workflow-config so that the default cannot fill a key the change removed."""
    config = resolve_config(REPO / "config" / "config.yaml", [TINY])
    change(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _unknown_schedule(c):
    c["schedules"]["linear"]["beta_schedule"] = "quadratic"


def _unknown_dataset(c):
    c["datasets"] = ["imagenet"]


def _T_not_int(c):
    c["grid"]["T"] = [20, "many"]


def _T_zero(c):
    c["grid"]["T"] = [0]


def _missing_key(c):
    del c["training"]["steps"]


def _wrong_type(c):
    c["training"]["batch_size"] = "thirty-two"


def _image_size_model_cannot_take(c):
    c["dataset_options"] = {"digits": {"image_size": 6}}
    c["model"]["channel_mults"] = [1, 2, 2]


def _undefined_grid_schedule(c):
    c["grid"]["schedules"] = ["linear", "sigmoid_ho"]


def _betas_reach_one(c):
    c["grid"]["T"] = [10]  # linear 1e-4..0.02 rescaled by 1000/10 gives beta = 2


def _kid_too_large(c):
    c["scoring"]["kid_subset_size"] = 1000


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_unknown_schedule, r"quadratic"),
        (_unknown_dataset, r"imagenet"),
        (_T_not_int, r"many"),
        (_T_zero, r"grid.T.0 = 0: must be >= 2"),
        (_missing_key, r"steps"),
        (_wrong_type, r"thirty-two"),
        (_image_size_model_cannot_take, r"image_size"),
        (_undefined_grid_schedule, r"grid.schedules: 'sigmoid_ho' is not defined"),
        (_betas_reach_one, r"schedules.linear at T=10"),
        (_kid_too_large, r"kid_subset_size"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else None,
)
def test_bad_config_stops_before_any_job(tmp_path, change, expected):
    bad = write_config(tmp_path, change)
    result = snakemake(
        "-n",
        "--replace-workflow-config",
        "--configfile",
        str(bad),
        "-d",
        str(tmp_path / "run"),
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(expected, output), output[-3000:]
    assert not (tmp_path / "run" / "results").exists()


def test_default_config_is_found_from_any_directory_and_is_the_full_grid(tmp_path):
    # Run from elsewhere with -s: config/config.yaml is still the base of every config.
    # (Every shipped overlay is planned by tests/test_profiles.py, through the SLURM profile.)
    result = snakemake(
        "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--quiet", "rules", cwd=tmp_path
    )
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    # 3 schedules x 5 T x 3 seeds: every metric of the default study has an interval over seeds.
    # Training is one job per run; sampling and scoring one job per cell (its three seeds).
    assert counts["train"] == "45" and counts["sample"] == "15" and counts["score"] == "15"
    # The reconstruction figure shows the largest T's first seed of each schedule.
    assert counts["reconstruct"] == "3"


@pytest.mark.slow
def test_tiny_study_end_to_end(tiny_study):
    # The study ran once for the session (conftest.py: `--cores 2`, tiny.yaml) in a copy of
    # the workflow; the library edits below change only that copy's sources.
    work = tiny_study.workdir
    config = "tests/configs/tiny.yaml"

    results = work / "results"
    metrics = pd.read_csv(results / "digits" / "metrics.csv")
    assert len(metrics) == 4
    assert {
        "dataset",
        "schedule",
        "T",
        "seed",
        "final_loss",
        "classifier_fid",
        "classifier_kid_mean",
    } <= set(metrics.columns)
    assert set(zip(metrics["schedule"], metrics["T"], strict=True)) == {
        ("linear", 25),
        ("linear", 50),
        ("cosine", 25),
        ("cosine", 50),
    }
    assert metrics["classifier_fid"].notna().all()

    # Scoring removed the batches that sampling kept for a retry.
    assert not list(results.glob("*/runs/*/sampling")), list(results.glob("*/runs/*/sampling"))

    schedules = pd.read_csv(results / "analysis" / "schedules.csv")
    assert {"schedule", "T", "t", "beta", "alpha_bar", "log_snr"} <= set(schedules.columns)
    assert len(schedules) == 2 * (25 + 50)

    pngs = sorted(results.rglob("*.png"))
    assert len(pngs) >= 10
    for png in pngs:
        with Image.open(png) as image:
            image.verify()

    report = (results / "report.html").read_text()
    for figure in (results / "figures").rglob("*.png"):
        assert f'alt="{figure.stem}"' in report, f"{figure.name} is not in the report"

    # Snakemake's own report bundles the page (and the figures) with its provenance.
    bundle = work / "report.zip"
    snakemake("--report", str(bundle), "--configfile", config, cwd=work)
    with zipfile.ZipFile(bundle) as archive:
        names = [Path(name).name for name in archive.namelist()]
    assert "report.html" in names and any(name.endswith(".pdf") for name in names), names
    bundle.unlink()

    # A second run has nothing to do; nor has one after an edit that cannot change a number:
    # a comment or a docstring in the U-Net, a log message in the training loop, a new
    # version number, or the whole finished study moved to another folder.
    def nothing_to_do(where=work):
        again = snakemake("-n", "--configfile", config, cwd=where)
        assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]

    nothing_to_do()
    unet = work / "src" / "ddpm" / "unet.py"
    edit(unet, '"""', '"""Edited docstring. ', count=1)
    edit(unet, "\n\n\n", "\n\n\n# A comment a reader added.\n", count=1)
    edit(work / "src" / "ddpm" / "training" / "loop.py", "resuming from", "resumed from")
    edit(work / "src" / "ddpm" / "__init__.py", '__version__ = "', '__version__ = "9.')
    nothing_to_do()
    moved = work.parent / "moved" / "repo"
    shutil.copytree(work, moved, symlinks=True)  # copy2 keeps the times, as `mv` does
    nothing_to_do(moved)

    # Editing what a figure draws reruns figures only; editing the training step reruns the
    # cells (and what follows them), not the forward-process analysis.
    edit(work / "src" / "ddpm" / "plots" / "runs.py", "figsize=(", "figsize=(0.5 + ", count=1)
    plan = snakemake("-n", "--quiet", "rules", "--configfile", config, cwd=work).stdout
    assert re.search(r"^figure\s+\d+$", plan, flags=re.M), plan
    assert "train" not in plan.split() and "closeness" not in plan, plan
    edit(
        work / "src" / "ddpm" / "training" / "loop.py", "loss.backward()", "(loss * 1.0).backward()"
    )
    plan = snakemake("-n", "--quiet", "rules", "--configfile", config, cwd=work).stdout
    assert re.search(r"^train\s+4$", plan, flags=re.M), plan


def edit(path: Path, old: str, new: str, count: int = -1) -> None:
    """Replace ``old`` by ``new`` in a source file, as a person editing it would."""
    source = path.read_text()
    assert old in source, f"{old!r} is not in {path}"
    path.write_text(source.replace(old, new, count))
