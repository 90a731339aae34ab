"""Inception-v3 weights a user hands us are loaded without running code, downloads are checked
against the published hash, and a weights file added after an offline run is picked up by the
next run of the workflow."""

from __future__ import annotations

import hashlib
import pathlib
import re
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
import yaml
from conftest import TINY_CONFIG, copy_workflow, run_snakemake_locally
from test_data import serve_responses

import ddpm.evaluation.inception as inception
from ddpm import ConfigError
from ddpm.evaluation.inception import resolve_inception_weights
from ddpm.evaluation.scoring import compute_metrics
from ddpm.workflow.layout import provided_weights_state

MARKER_NAME = "code-ran.txt"


class _TouchOnUnpickle:
    """Unpickling this creates ``marker``: the stand-in for code hidden in a weights file."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _write_weights_with_code(path: pathlib.Path) -> pathlib.Path:
    """An Inception-looking state dict that also carries an object whose unpickling runs code."""
    marker = path.parent / MARKER_NAME
    torch.save({"fc.weight": torch.zeros(1008, 2048), "payload": _TouchOnUnpickle(marker)}, path)
    return marker


def _small_state_dict(path: pathlib.Path) -> pathlib.Path:
    torch.save({"fc.weight": torch.zeros(3, 2048), "fc.bias": torch.zeros(3)}, path)
    return path


def _assert_tells_what_is_wrong_and_what_to_do(message: str) -> None:
    assert "not a plain PyTorch state dict" in message
    assert "nothing of it was run" in message
    assert (
        inception.INCEPTION_WEIGHTS_FILENAME in message
        and inception.INCEPTION_WEIGHTS_URL in message
    )
    assert "torch.save(model.state_dict(), path)" in message


def test_the_test_file_really_runs_code_when_loaded_unsafely(tmp_path):
    # Without this, the tests below could pass with a payload that never fires.
    marker = _write_weights_with_code(tmp_path / "evil.pth")
    torch.load(tmp_path / "evil.pth", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("where", ["weights_path", "drop_in", "downloaded"])
def test_weights_file_with_code_is_refused_before_it_runs(where, tmp_path):
    resources = tmp_path / "resources"
    target = {
        "weights_path": tmp_path / "mine.pth",
        "drop_in": resources / inception.INCEPTION_WEIGHTS_FILENAME,
        "downloaded": resources / "downloaded" / inception.INCEPTION_WEIGHTS_FILENAME,
    }[where]
    target.parent.mkdir(parents=True, exist_ok=True)
    marker = _write_weights_with_code(target)
    weights_path = target if where == "weights_path" else None
    for mode in ("auto", "required"):
        with pytest.raises(ConfigError) as error:
            resolve_inception_weights(
                resources, mode=mode, weights_path=weights_path, url=inception.INCEPTION_WEIGHTS_URL
            )
        _assert_tells_what_is_wrong_and_what_to_do(str(error.value))
        assert str(target) in str(error.value)
    assert not marker.exists()


def test_scoring_with_a_weights_file_with_code_runs_none_of_it(tmp_path):
    """compute_metrics hands the file to torch-fidelity, which unpickles weights files unsafely:
    the project's extractor must read it first, safely, and stop."""
    marker = _write_weights_with_code(tmp_path / "evil.pth")
    images = np.zeros((4, 1, 8, 8), dtype=np.uint8)
    with pytest.raises(ConfigError) as error:
        compute_metrics(
            images,
            images,
            extractor="inception",
            weights_path=tmp_path / "evil.pth",
            kid_subset_size=2,
            kid_subsets=1,
            isc_splits=1,
            device="cpu",
        )
    _assert_tells_what_is_wrong_and_what_to_do(str(error.value))
    assert not marker.exists()


def test_a_file_that_is_no_state_dict_is_refused_with_the_fix(tmp_path):
    for content in (b"<html>not found</html>", None):
        path = tmp_path / "weights.pth"
        if content is None:
            torch.save([torch.zeros(2)], path)  # loads safely, but is no state dict
        else:
            path.write_bytes(content)
        with pytest.raises(ConfigError, match="state dict") as error:
            inception.load_inception_state_dict(path)
        assert inception.INCEPTION_WEIGHTS_FILENAME in str(error.value)


def _network_without_weights() -> tf_inception.FeatureExtractorInceptionV3:
    with (
        mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: None),
        mock.patch.object(
            tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None
        ),
    ):
        return tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])


def test_verified_extractor_computes_what_torch_fidelity_computes(tmp_path):
    network = _network_without_weights()
    generator = torch.Generator().manual_seed(0)
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
    path = tmp_path / "random-inception.pth"
    torch.save(network.state_dict(), path)

    stock = tf_inception.FeatureExtractorInceptionV3("x", ["2048", "logits_unbiased"], str(path))
    verified = inception.VerifiedInceptionV3("y", ["2048", "logits_unbiased"], str(path))
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        for expected, actual in zip(stock(images), verified(images), strict=True):
            torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    assert not list(tmp_path.glob("ddpm-inception-*")), "the private copy is removed"


def test_verified_extractor_never_downloads():
    with (
        mock.patch.object(tf_inception, "load_state_dict_from_url", side_effect=AssertionError),
        pytest.raises(ConfigError, match="resolve_inception_weights"),
    ):
        inception.VerifiedInceptionV3("y", ["2048"])


def test_the_published_hash_comes_from_torch_fidelitys_url():
    assert inception.INCEPTION_WEIGHTS_FILENAME == "weights-inception-2015-12-05-6726825d.pth"
    assert inception.INCEPTION_SHA256_PREFIX == "6726825d"


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_is_checked_against_the_hash_its_name_carries(tmp_path):
    served = _small_state_dict(tmp_path / "served.pth")
    good = tmp_path / f"weights-{_sha256(served)[:8]}.pth"
    good.write_bytes(served.read_bytes())
    path, reason = resolve_inception_weights(
        tmp_path / "ok", mode="auto", weights_path=None, url=good.as_uri()
    )
    assert path == tmp_path / "ok" / "downloaded" / good.name and "downloaded" in reason

    wrong = tmp_path / "weights-00000000.pth"
    wrong.write_bytes(served.read_bytes())
    path, reason = resolve_inception_weights(
        tmp_path / "bad", mode="auto", weights_path=None, url=wrong.as_uri()
    )
    assert path is None and "SHA-256" in reason and "00000000" in reason
    assert not [p for p in (tmp_path / "bad").rglob("*") if p.is_file()], "nothing kept"


def test_download_is_retried_after_a_transient_failure(tmp_path, monkeypatch):
    served = _small_state_dict(tmp_path / "served.pth").read_bytes()
    monkeypatch.setattr("ddpm.data.download.time.sleep", lambda seconds: None)
    with serve_responses([(503, b"busy", None), (200, served, None)]) as (url, requested):
        path, reason = resolve_inception_weights(
            tmp_path / "resources", mode="required", weights_path=None, url=url
        )
    assert len(requested) == 2 and path.read_bytes() == served and "downloaded" in reason


def test_offline_reason_says_where_to_put_the_file(tmp_path):
    resources = tmp_path / "resources"
    path, reason = resolve_inception_weights(
        resources, mode="auto", weights_path=None, url=OFFLINE_URL
    )
    drop_in = resources / inception.INCEPTION_WEIGHTS_FILENAME
    assert path is None and "not available offline" in reason and str(drop_in) in reason
    assert "refused" in reason and not [p for p in resources.rglob("*") if p.is_file()]
    with pytest.raises(ConfigError, match="scoring.inception.weights_path"):
        resolve_inception_weights(resources, mode="required", weights_path=None, url=OFFLINE_URL)


def test_reason_says_whether_the_weights_are_the_published_ones(tmp_path):
    given = _small_state_dict(tmp_path / "mine.pth")
    _, reason = resolve_inception_weights(
        tmp_path / "resources", mode="auto", weights_path=given, url=None
    )
    assert "not torch-fidelity's published weights" in reason
    with mock.patch.object(inception, "INCEPTION_SHA256_PREFIX", _sha256(given)[:8]):
        _, reason = resolve_inception_weights(
            tmp_path / "resources", mode="auto", weights_path=given, url=None
        )
    assert "(torch-fidelity's published weights" in reason


def test_provided_state_changes_when_the_user_adds_a_file_not_when_we_download(tmp_path):
    resources = tmp_path / "resources"
    url = "http://127.0.0.1:9/w.pth"
    assert provided_weights_state(None, url, resources) == "none"
    downloaded = resources / "downloaded" / "w.pth"
    downloaded.parent.mkdir(parents=True)
    _small_state_dict(downloaded)
    assert provided_weights_state(None, url, resources) == "none"
    _small_state_dict(resources / "w.pth")
    assert str(resources / "w.pth") in provided_weights_state(None, url, resources)
    given = _small_state_dict(tmp_path / "mine.pth")
    assert str(given) in provided_weights_state(given, url, resources)


# --------------------------------------------------------------------------------------
# The workflow: weights added after an offline run are used by the next run

#: An address that refuses connections at once: the workflow runs as if offline.
OFFLINE_URL = "http://127.0.0.1:9/" + inception.INCEPTION_WEIGHTS_FILENAME
ONE_RUN = "results/digits/runs/linear-T25-seed0/metrics.json"


def _planned_jobs(dry_run_output: str) -> dict[str, int]:
    """Rule name -> job count from the 'Job stats' table of a dry run."""
    if "Nothing to be done" in dry_run_output:
        return {}
    table = dry_run_output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def _workflow_with_inception(tmp_path: pathlib.Path, url: str) -> pathlib.Path:
    workdir = copy_workflow(tmp_path / "work")
    settings = yaml.safe_load(TINY_CONFIG.read_text())
    settings["scoring"]["inception"] = {"mode": "auto", "weights_path": None, "url": url}
    (workdir / "study.yaml").write_text(yaml.safe_dump(settings))
    return workdir


def _snakemake(workdir: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_snakemake_locally(
        workdir, "--configfile", "study.yaml", "--cores", "1", *args, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return result


@pytest.mark.slow
def test_weights_rule_is_not_redone_after_it_downloaded(tmp_path):
    served = _small_state_dict(tmp_path / "served.pth")
    published = tmp_path / f"weights-{_sha256(served)[:8]}.pth"
    published.write_bytes(served.read_bytes())
    workdir = _workflow_with_inception(tmp_path, published.as_uri())
    target = "resources/inception/status.json"
    _snakemake(workdir, target)
    assert (workdir / "resources/inception/downloaded" / published.name).is_file()
    assert _planned_jobs(_snakemake(workdir, "-n", target).stdout) == {}


@pytest.mark.slow
def test_weights_rule_reruns_once_for_a_file_added_after_an_offline_run(tmp_path):
    workdir = _workflow_with_inception(tmp_path, OFFLINE_URL)
    target = "resources/inception/status.json"
    _snakemake(workdir, target)
    assert _planned_jobs(_snakemake(workdir, "-n", target).stdout) == {}

    drop_in = workdir / "resources/inception" / inception.INCEPTION_WEIGHTS_FILENAME
    _small_state_dict(drop_in)
    assert _planned_jobs(_snakemake(workdir, "-n", target).stdout) == {"inception_weights": 1}
    _snakemake(workdir, target)
    status = yaml.safe_load((workdir / target).read_text())
    assert status["weights_path"] == str(drop_in.relative_to(workdir)), status
    # Once is enough: the file in place and the status agree, nothing is redone.
    assert _planned_jobs(_snakemake(workdir, "-n", target).stdout) == {}


@pytest.mark.slow
def test_weights_added_after_an_offline_run_are_used_by_the_next_run(tmp_path):
    workdir = _workflow_with_inception(tmp_path, OFFLINE_URL)
    _snakemake(workdir, ONE_RUN)
    status = yaml.safe_load((workdir / "resources/inception/status.json").read_text())
    assert status["weights_path"] is None and "not available offline" in status["reason"]
    assert _planned_jobs(_snakemake(workdir, "-n", ONE_RUN).stdout) == {}

    # Where the message says, a file (its content only has to pass the safe load here: the dry
    # run plans the scoring but does not run it).
    drop_in = workdir / "resources/inception" / inception.INCEPTION_WEIGHTS_FILENAME
    assert str(drop_in.relative_to(workdir)) in status["reason"]
    _small_state_dict(drop_in)
    planned = _planned_jobs(_snakemake(workdir, "-n", ONE_RUN).stdout)
    assert planned == {"inception_weights": 1, "real_floor": 1, "score": 1}, planned


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
