"""A small CNN trained on the dataset's own labels, used as a torch-fidelity feature extractor.

Inception-v3 features are what papers report, but for 8x8 or 28x28 digits they say little (the
images are upsampled to 299x299 and judged against ImageNet classes). A classifier trained on the
dataset itself gives an Inception Score over the dataset's classes (at most the number of classes)
and a Frechet distance in a feature space that knows what a digit looks like. Its logits feed the
Inception Score (torch-fidelity applies the softmax) and its penultimate features feed FID, KID and
precision/recall.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from .. import ConfigError
from ..diffusion import to_model_range
from ..files import atomic_write
from ..runtime import resolve_device
from .common import as_uint8_images, scoring_view

__all__ = [
    "CLASSIFIER_EXTRACTOR_NAME",
    "ClassifierFeatureExtractor",
    "DomainClassifier",
    "load_classifier",
    "read_classifier_config",
    "register_classifier_extractor",
    "train_classifier",
]

logger = logging.getLogger(__name__)

CLASSIFIER_EXTRACTOR_NAME = "ddpm-classifier"
"""The name under which the classifier is registered with torch-fidelity (and in its cache files)."""

_FILE_FORMAT = "ddpm-domain-classifier"
_FILE_VERSION = 1


class DomainClassifier(nn.Module):
    """Two conv stages (conv 3x3, BatchNorm, ReLU, 2x2 max-pool) and a two-layer head.

    The head flattens the last feature map rather than averaging it: on 8x8 and 28x28 digits where
    a stroke lies matters, and global average pooling cost about 10 points of accuracy.

    Args:
        in_channels: 1 for grayscale, 3 for RGB.
        image_size: height and width of the (square) images it is trained on.
        num_classes: number of labels.
        width: channels of the first conv stage; the second has twice as many.
        feature_dim: size of the penultimate layer, the features FID/KID/PR are computed on.
        dropout: dropout before the last layer (training only).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        *,
        width: int = 16,
        feature_dim: int = 128,
        dropout: float = 0.2,
    ):
        super().__init__()
        if image_size < 4:
            raise ConfigError(f"image_size must be at least 4 (two 2x2 poolings), got {image_size}")
        self.config = {
            "in_channels": int(in_channels),
            "image_size": int(image_size),
            "num_classes": int(num_classes),
            "width": int(width),
            "feature_dim": int(feature_dim),
            "dropout": float(dropout),
        }
        pooled = image_size // 4
        self.body = nn.Sequential(
            _conv_block(in_channels, width),
            nn.MaxPool2d(2),
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * pooled * pooled, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (N, feature_dim) of images ``x`` in [-1, 1]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes) of images ``x`` in [-1, 1]."""
        return self.head(self.body(x))


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def _as_labels(labels, n_images: int, name: str) -> torch.Tensor:
    labels = torch.as_tensor(np.asarray(labels))
    if labels.dim() != 1 or len(labels) != n_images:
        raise ConfigError(
            f"{name} labels must be 1-D with one label per image ({n_images}), got shape {tuple(labels.shape)}"
        )
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ConfigError(f"{name} labels must be integer class indices")
    labels = labels.long()
    if len(labels) and labels.min() < 0:
        raise ConfigError(f"{name} labels must be class indices >= 0, got {int(labels.min())}")
    return labels


@torch.no_grad()
def _accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device, batch_size=1000
) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = to_model_range(images[start : start + batch_size].to(device))
        correct += (model(x).argmax(dim=1).cpu() == labels[start : start + batch_size]).sum().item()
    return correct / len(images)


def train_classifier(
    train_images,
    train_labels,
    test_images,
    test_labels,
    out_path: str | Path,
    *,
    epochs: int = 100,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    width: int = 16,
    feature_dim: int = 128,
    seed: int = 0,
    device: str = "auto",
    image_size: int | None = None,
) -> dict:
    """Train a :class:`DomainClassifier` with Adam and cross-entropy and save it to ``out_path``.

    Args:
        train_images, test_images: uint8 images N x C x H x W (tensors or numpy arrays), square.
        train_labels, test_labels: integer class indices, one per image.
        out_path: where the weights and the architecture are written (atomically, ``torch.save``).
        epochs, batch_size, learning_rate: the optimisation.
        width, feature_dim: the architecture (see :class:`DomainClassifier`).
        seed: seeds the initialisation, dropout and the order of batches; the global RNG state is
            left as it was.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        image_size: the side the classifier sees (:func:`scoring_view`: k x k blocks
            averaged); ``None``: the images' own.

    Returns:
        ``{"test_accuracy", "epochs", "train_size", "test_size", "seconds"}``.
    """
    train_images, train_labels, test_images, test_labels = _checked_training_data(
        train_images, train_labels, test_images, test_labels
    )
    if image_size is not None:
        train_images = scoring_view(train_images, image_size)
        test_images = scoring_view(test_images, image_size)
    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    channels, height, _ = train_images.shape[1:]
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    device = resolve_device(device)

    started = time.perf_counter()
    # Fork the RNG so that seeding here does not change random numbers elsewhere in the process.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = DomainClassifier(
            channels, height, num_classes, width=width, feature_dim=feature_dim
        ).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        test_accuracy = _fit(
            model,
            optimizer,
            (train_images, train_labels),
            (test_images, test_labels),
            epochs=epochs,
            batch_size=batch_size,
            order_generator=torch.Generator().manual_seed(seed),
        )

    summary = {
        "test_accuracy": float(test_accuracy),
        "epochs": int(epochs),
        "train_size": len(train_images),
        "test_size": len(test_images),
        "seconds": float(time.perf_counter() - started),
    }
    training = {**summary, "seed": int(seed), "batch_size": int(batch_size)}
    _save_classifier(out_path, model, {**training, "learning_rate": float(learning_rate)})
    return summary


def _checked_training_data(train_images, train_labels, test_images, test_labels) -> tuple:
    """The four inputs as CPU tensors, checked: one square image size, one label per image."""
    train_images = as_uint8_images(train_images, "training")
    test_images = as_uint8_images(test_images, "test")
    train_labels = _as_labels(train_labels, len(train_images), "training")
    test_labels = _as_labels(test_labels, len(test_images), "test")
    if len(train_images) == 0 or len(test_images) == 0:
        raise ConfigError(
            f"need training and test images, got {len(train_images)} and {len(test_images)}"
        )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ConfigError(
            f"training images are {tuple(train_images.shape[1:])} (C, H, W) but test images are "
            f"{tuple(test_images.shape[1:])}; use one dataset at one resolution"
        )
    _, height, width_px = train_images.shape[1:]
    if height != width_px:
        raise ConfigError(f"the classifier expects square images, got {height}x{width_px}")
    return train_images, train_labels, test_images, test_labels


def _fit(
    model: DomainClassifier,
    optimizer: torch.optim.Optimizer,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    order_generator: torch.Generator,
) -> float:
    """Train for ``epochs`` epochs in the order ``order_generator`` draws; return the test
    accuracy after the last one."""
    device = next(model.parameters()).device
    channels, height, _ = train[0].shape[1:]
    logger.info(
        "training the domain classifier: %d training / %d test images, %d classes, %dx%dx%d, "
        "%d epochs, device %s",
        *(len(train[0]), len(test[0]), model.config["num_classes"], channels, height, height),
        *(epochs, device),
    )
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(train[0]), generator=order_generator)
        loss = _train_one_epoch(model, optimizer, *train, order, batch_size)
        test_accuracy = _accuracy(model, *test, device)
        logger.info(
            "classifier epoch %d/%d: training loss %.4f, test accuracy %.2f%% (%.1f s)",
            *(epoch, epochs, loss, 100 * test_accuracy, time.perf_counter() - started),
        )
    return test_accuracy


def _train_one_epoch(
    model: DomainClassifier,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    batch_size: int,
) -> float:
    """One pass over the images in ``order``; returns the mean training loss."""
    model.train()
    device = next(model.parameters()).device
    loss_sum, seen = 0.0, 0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        x = to_model_range(images[index].to(device))
        y = labels[index].to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(index)
        seen += len(index)
    return loss_sum / seen


def _save_classifier(out_path: str | Path, model: DomainClassifier, training: dict) -> None:
    """Write the weights, the architecture and how they were trained (atomically)."""
    state = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "config": model.config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": training,
    }
    atomic_write(out_path, lambda tmp: torch.save(state, tmp))
    accuracy = 100 * training["test_accuracy"]
    logger.info("saved the classifier to %s (test accuracy %.2f%%)", out_path, accuracy)


def _load_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"classifier weights {path} do not exist; train them with ddpm.evaluation.train_classifier"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"cannot read classifier weights {path}: {error}") from error
    if not isinstance(state, dict) or state.get("format") != _FILE_FORMAT:
        raise ConfigError(
            f"{path} is not a classifier file written by ddpm.evaluation.train_classifier"
        )
    if state.get("version") != _FILE_VERSION:
        raise ConfigError(
            f"{path} has classifier file version {state.get('version')}, this code reads "
            f"version {_FILE_VERSION}; retrain the classifier"
        )
    return state


def read_classifier_config(path: str | Path) -> dict:
    """The architecture (``in_channels``, ``image_size``, ``num_classes``, ...) and training summary
    stored in a classifier file, without building the model."""
    state = _load_state(path)
    return {**state["config"], "training": state.get("training", {})}


def load_classifier(path: str | Path) -> DomainClassifier:
    """Rebuild the classifier saved by :func:`train_classifier` (on the CPU, in eval mode)."""
    state = _load_state(path)
    config = dict(state["config"])
    model = DomainClassifier(
        config.pop("in_channels"), config.pop("image_size"), config.pop("num_classes"), **config
    )
    model.load_state_dict(state["state_dict"])
    return model.eval()


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor around a :class:`DomainClassifier`.

    Features: ``"logits"`` (default for ISC, which applies the softmax itself) and ``"features"``
    (the penultimate layer; default for FID, KID and precision/recall). Inputs are uint8 images
    N x C x H x W with the channel count and size the classifier was trained on.

    Args:
        name: the registered name (``CLASSIFIER_EXTRACTOR_NAME``).
        features_list: the features to return, in this order.
        feature_extractor_weights_path: a file written by :func:`train_classifier` (required).
        **kwargs: the rest of torch-fidelity's options, unused here.
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ConfigError(
                "the classifier feature extractor needs feature_extractor_weights_path "
                "(a file written by ddpm.evaluation.train_classifier)"
            )
        self.classifier = load_classifier(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        config = self.classifier.config
        expected = (config["in_channels"], config["image_size"], config["image_size"])
        if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ConfigError(
                f"the classifier expects uint8 images N x {expected[0]} x {expected[1]} x "
                f"{expected[2]}, got {x.dtype} {tuple(x.shape)}"
            )
        features = self.classifier.features(to_model_range(x))
        outputs = {"features": features, "logits": self.classifier.head(features)}
        return tuple(outputs[name].float() for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "logits", "features"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled():
        return False  # small enough that compiling would cost more than it saves

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 28, 28, dtype=torch.uint8)


def register_classifier_extractor() -> str:
    """Register :class:`ClassifierFeatureExtractor` with torch-fidelity (once per process; later
    calls do nothing) and return its name."""
    if CLASSIFIER_EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(CLASSIFIER_EXTRACTOR_NAME, ClassifierFeatureExtractor)
    return CLASSIFIER_EXTRACTOR_NAME
