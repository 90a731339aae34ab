"""Scoring as the study does it (ddpm.evaluation.study): a run's samples and the real floor,
checked against torch-fidelity called directly and against what real images must score."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch_fidelity
from torch.utils.data import Dataset

from ddpm.evaluation.classifier import register_classifier_extractor, train_classifier
from ddpm.evaluation.scoring import metric_columns
from ddpm.evaluation.study import draw_real_set, score_real_floor, score_samples

pytestmark = pytest.mark.usefixtures("one_thread")

# Small KID settings keep torch-fidelity's kernel matrices cheap; the spread is skipped
# unless a test asks for it.
OPTIONS = {"kid_subset_size": 50, "kid_subsets": 5, "isc_splits": 5, "bootstrap_resamples": 0}
NO_INCEPTION = {"mode": "off", "weights_path": None, "reason": "scoring.inception.mode is 'off'"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """scikit-learn's 8x8 digits as uint8 (N, 1, 8, 8), split 1,200 / 597, and a domain
    classifier trained on them for 15 epochs (94 % test accuracy)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.from_numpy((data.images * 255 / 16).round().astype(np.uint8))[:, None]
    labels = torch.from_numpy(data.target.astype(np.int64))
    folder = tmp_path_factory.mktemp("study_scoring")
    classifier = folder / "classifier.pt"
    train_classifier(
        images[:1200], labels[:1200], images[1200:], labels[1200:], classifier, epochs=15,
        device="cpu",
    )  # fmt: skip
    return {"train": images[:1200], "test": images[1200:], "classifier": classifier}


def _study_arguments(digits, cache_dir, options=OPTIONS) -> dict:
    return {
        "dataset": "digits",
        "classifier_path": digits["classifier"],
        "inception_status": NO_INCEPTION,
        "cache_dir": cache_dir,
        "options": options,
    }


def _inverted(images: torch.Tensor) -> torch.Tensor:
    """Digits drawn white on black instead of black on white: far from the dataset."""
    return 255 - images


def _same_scores(a: dict, b: dict) -> bool:
    """Equal records, a NaN (a metric not computed) matching a NaN."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))
        for k in a
    )


class _Images(Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def test_scores_of_a_run_are_torch_fidelity_s_on_the_classifier_features(digits, tmp_path):
    samples = digits["train"][:200]
    scores = score_samples(samples, digits["test"], **_study_arguments(digits, tmp_path / "cache"))
    direct = torch_fidelity.calculate_metrics(
        input1=_Images(samples),
        input2=_Images(digits["test"]),
        feature_extractor=register_classifier_extractor(),
        feature_extractor_weights_path=str(digits["classifier"]),
        isc=True, fid=True, kid=True, prc=True, isc_splits=5, kid_subset_size=50, kid_subsets=5,
        cuda=False, save_cpu_ram=True, verbose=False,
    )  # fmt: skip
    assert scores["classifier_fid"] == pytest.approx(direct["frechet_inception_distance"])
    assert scores["classifier_kid_mean"] == pytest.approx(direct["kernel_inception_distance_mean"])
    assert scores["classifier_is_mean"] == pytest.approx(direct["inception_score_mean"])
    assert scores["classifier_precision"] == pytest.approx(direct["precision"])
    assert scores["classifier_recall"] == pytest.approx(direct["recall"])
    assert scores["n_generated"] == 200 and scores["n_reference"] == len(digits["test"])
    assert scores["classifier_status"] == "computed"
    # Without Inception weights its columns are there, empty, and say why.
    assert all(math.isnan(scores[column]) for column in metric_columns("inception"))
    assert scores["inception_status"] == "not computed: scoring.inception.mode is 'off'"


def test_real_images_score_better_than_images_unlike_the_dataset(digits, tmp_path):
    arguments = _study_arguments(digits, tmp_path / "cache")
    floor = score_real_floor(digits["train"], digits["test"], 200, seed=0, **arguments)
    unlike = score_samples(_inverted(digits["train"][:200]), digits["test"], **arguments)
    assert floor["n_generated"] == 200
    assert 0 <= floor["classifier_fid"] < unlike["classifier_fid"] / 10
    assert floor["classifier_kid_mean"] < unlike["classifier_kid_mean"]
    # a classifier that tells the ten digits apart is confident on real digits
    assert floor["classifier_is_mean"] > 2 * unlike["classifier_is_mean"]
    assert floor["classifier_is_mean"] <= 10  # at most the number of classes
    assert floor["classifier_precision"] > unlike["classifier_precision"]


def test_the_floor_scores_real_images_drawn_outside_the_test_set_as_samples(digits, tmp_path):
    arguments = _study_arguments(digits, tmp_path / "cache")
    pool = torch.cat([digits["test"][:100], digits["train"][:300]])  # 100 are test images
    floor = score_real_floor(pool, digits["test"], 150, seed=3, **arguments)
    drawn = draw_real_set(pool, digits["test"], 150, seed=3)
    test_images = {image.numpy().tobytes() for image in digits["test"]}
    assert not {image.numpy().tobytes() for image in drawn} & test_images
    assert _same_scores(floor, score_samples(drawn, digits["test"], seed=3, **arguments))


def test_spread_is_seeded_and_the_reference_cache_changes_nothing(digits, tmp_path):
    options = {**OPTIONS, "bootstrap_resamples": 8}
    samples = digits["train"][:120]
    first = score_samples(
        samples, digits["test"], seed=1, **_study_arguments(digits, tmp_path / "a", options)
    )
    assert first["bootstrap_resamples"] == 8
    low, high = first["classifier_fid_boot_lo"], first["classifier_fid_boot_hi"]
    assert 0 < low <= high and first["classifier_fid_boot_sd"] > 0
    # the second call reads the reference features from the cache the first one wrote
    assert any((tmp_path / "a").iterdir())
    again = score_samples(
        samples, digits["test"], seed=1, **_study_arguments(digits, tmp_path / "a", options)
    )
    assert _same_scores(again, first)
    other_seed = score_samples(
        samples, digits["test"], seed=2, **_study_arguments(digits, tmp_path / "b", options)
    )
    assert other_seed["classifier_fid"] == first["classifier_fid"]  # the metric is not resampled
    assert other_seed["classifier_fid_boot_sd"] != first["classifier_fid_boot_sd"]
