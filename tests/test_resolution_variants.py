"""A dataset at twice its side and scored at its own: nearest-neighbour enlargement (a dataset
option), dataset variants in a study, and scoring after k x k block averaging (a scoring
option). Together they let a study train the 8 x 8 digits at 16 x 16 and score both alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm import ConfigError, DataError
from ddpm.data.prepare import prepare_dataset
from ddpm.data.resize import resize_images
from ddpm.data.store import load_split
from ddpm.evaluation.classifier import load_classifier, train_classifier
from ddpm.evaluation.common import scoring_view
from ddpm.workflow.config_check import check_study_config
from ddpm.workflow.config_load import resolve_config

REPO = Path(__file__).resolve().parents[1]


def test_nearest_makes_every_pixel_a_block():
    images = torch.arange(2 * 3 * 3, dtype=torch.uint8).reshape(2, 1, 3, 3)
    enlarged = resize_images(images, 6, "nearest")
    assert enlarged.shape == (2, 1, 6, 6)
    expected = np.kron(images.numpy(), np.ones((1, 1, 2, 2), dtype=np.uint8))
    assert np.array_equal(enlarged.numpy(), expected)


def test_nearest_needs_a_whole_factor():
    with pytest.raises(DataError, match="multiple of the input size"):
        resize_images(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 12, "nearest")


def test_scoring_view_undoes_nearest_enlargement_and_averages_blocks():
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(scoring_view(resize_images(images, 32, "nearest"), 8), images)
    assert scoring_view(images, None) is images and scoring_view(images, 8) is images
    block = torch.tensor([[[[10, 11], [12, 14]]]], dtype=torch.uint8)  # mean 11.75
    assert scoring_view(block, 1).item() == 12


def test_scoring_view_needs_a_divisor():
    with pytest.raises(ConfigError, match="multiple of 3"):
        scoring_view(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 3)


def test_prepared_variant_is_the_digits_enlarged(tmp_path):
    prepare_dataset("digits", tmp_path / "d8.npz", 8)
    meta = prepare_dataset("digits", tmp_path / "d16.npz", 16, resize_mode="nearest")
    assert meta["image_size"] == 16 and meta["resize_mode"] == "nearest"
    for split in ("train", "test"):
        small, small_labels = load_split(tmp_path / "d8.npz", split)
        large, large_labels = load_split(tmp_path / "d16.npz", split)
        assert torch.equal(large, resize_images(small, 16, "nearest"))
        assert torch.equal(large_labels, small_labels)


def test_nearest_dataset_needs_a_multiple_of_the_native_size(tmp_path):
    with pytest.raises(DataError, match="multiple of digits's native size"):
        prepare_dataset("digits", tmp_path / "d.npz", 12, resize_mode="nearest")


def test_classifier_scoring_the_enlarged_digits_is_the_digits_classifier(tmp_path):
    # Trained on the enlarged images seen at 8 x 8, it is the same network, weight for weight:
    # the two datasets of a study are scored by one classifier.
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(np.rint(digits.images * 255 / 16).astype(np.uint8))[:, None]
    labels = torch.from_numpy(digits.target)
    small = (images[:200], labels[:200], images[200:260], labels[200:260])
    large = (resize_images(images[:200], 16, "nearest"), labels[:200])
    large += (resize_images(images[200:260], 16, "nearest"), labels[200:260])
    train_classifier(*small, tmp_path / "small.pt", epochs=1, seed=0)
    train_classifier(*large, tmp_path / "large.pt", epochs=1, seed=0, image_size=8)
    first, second = load_classifier(tmp_path / "small.pt"), load_classifier(tmp_path / "large.pt")
    for (name, x), (_, y) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name


def _config(**dataset_options):
    config = resolve_config(REPO / "config" / "config.yaml", [])
    config["dataset_options"] = {**config["dataset_options"], **dataset_options}
    return config


def test_a_variant_is_checked_like_its_dataset():
    config = _config(digits_x2={"variant_of": "digits", "image_size": 16, "resize_mode": "nearest"})
    config["datasets"] = ["digits", "digits_x2"]
    config["scoring"]["image_size"] = 8
    assert check_study_config(config) == []


@pytest.mark.parametrize(
    "options, scoring_size, message",
    [
        ({"variant_of": "digts", "image_size": 16}, None, "variant_of = 'digts': unknown dataset"),
        (
            {"variant_of": "digits", "image_size": 12, "resize_mode": "nearest"},
            None,
            "not a multiple",
        ),
        ({"variant_of": "digits", "image_size": 16}, 6, "scoring.image_size = 6"),
    ],
)
def test_bad_variants_are_named(options, scoring_size, message):
    config = _config(digits_x2=options)
    config["datasets"] = ["digits", "digits_x2"]
    config["scoring"]["image_size"] = scoring_size
    problems = check_study_config(config)
    assert any(message in problem for problem in problems), problems


def test_a_registry_dataset_cannot_be_a_variant():
    config = _config(mnist5k={"variant_of": "digits"})
    problems = check_study_config(config)
    assert any("mnist5k is a dataset of its own" in problem for problem in problems), problems
