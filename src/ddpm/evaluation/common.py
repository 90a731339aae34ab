"""What the evaluation modules share: the check of an image batch."""

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
