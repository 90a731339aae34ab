"""What the evaluation modules share: the check of an image batch, and the images as they are scored."""

from __future__ import annotations

import numpy as np
import torch

from .. import ConfigError


def as_uint8_images(images, name: str) -> torch.Tensor:
    """Check that ``images`` is a uint8 batch N x C x H x W (tensor or numpy array) and return a
    CPU tensor of it (no copy when it already is one)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ConfigError(
            f"{name} images must be a torch.Tensor or numpy array, got {type(images).__name__}"
        )
    if images.dtype != torch.uint8:
        raise ConfigError(
            f"{name} images must have dtype uint8 (values 0..255), got {images.dtype}; convert "
            "model outputs in [-1, 1] with ddpm.diffusion.from_model_range"
        )
    if images.dim() != 4:
        raise ConfigError(
            f"{name} images must be 4-D (N x C x H x W), got shape {tuple(images.shape)}; "
            "give grayscale images a channel axis of size 1"
        )
    return images.cpu()


def scoring_view(images, image_size: int | None) -> torch.Tensor:
    """uint8 images N x C x H x W as scored at side ``image_size``: each k x k block of pixels
    (k = H / image_size, a whole number) replaced by its mean, rounded; ``None`` or the images'
    own size: the images unchanged.

    Nearest-neighbour enlargement by k followed by this gives the original images back
    exactly, so a study of enlarged images is scored on the same footing as the originals.
    """
    images = as_uint8_images(images, "scored")
    size = images.shape[-1]
    if image_size is None or image_size == size:
        return images
    if image_size < 1 or size % image_size or images.shape[-2] != size:
        raise ConfigError(
            f"scoring at {image_size} x {image_size} averages whole k x k blocks: the images "
            f"({images.shape[-2]} x {size}) must be square with a side that is a multiple of "
            f"{image_size}; set scoring.image_size to a divisor of every dataset's size, or null"
        )
    factor = size // image_size
    averaged = torch.nn.functional.avg_pool2d(images.double(), factor)
    return averaged.round().to(torch.uint8)
