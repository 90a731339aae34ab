"""Bringing square uint8 images to the stored size: antialiased resampling, zero padding, or
nearest-neighbour enlargement by a whole factor."""

from __future__ import annotations

import numpy as np
import torch

from .. import DataError

__all__ = ["RESIZE_MODES", "check_image_size", "resize_images"]

RESIZE_MODES = ("resize", "pad", "nearest")


def resize_images(
    images_uint8: np.ndarray | torch.Tensor,
    image_size: int,
    mode: str = "resize",
    *,
    chunk_size: int = 4096,
) -> np.ndarray | torch.Tensor:
    """Bring square uint8 images (N, C, H, W) to (N, C, image_size, image_size).

    Args:
        images_uint8: uint8 images as a numpy array or a torch tensor; the result has the
            same type.
        image_size: side of the output images.
        mode: ``"resize"``: antialiased bilinear resampling
            (``torchvision.transforms.v2.functional.resize``), for square inputs;
            ``"pad"``: place the images in the centre of a zero (black) canvas, which keeps
            every pixel as it is; needs ``image_size`` at least the input size. An odd margin
            puts the extra pixel at the bottom/right.
            ``"nearest"``: nearest-neighbour enlargement by a whole factor (every pixel becomes
            a k x k block), for ``image_size`` a multiple of the input size: the images carry
            exactly the information of the originals, and averaging each k x k block gives
            them back.
        chunk_size: images resampled at once, which bounds the float buffers the resampler
            allocates.
    """
    if mode not in RESIZE_MODES:
        raise DataError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    check_image_size(image_size)
    is_numpy = isinstance(images_uint8, np.ndarray)
    images = torch.from_numpy(images_uint8) if is_numpy else images_uint8
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(
            "resize_images expects uint8 images of shape (N, C, H, W), got "
            f"{type(images_uint8).__name__} {getattr(images_uint8, 'dtype', '?')} "
            f"of shape {tuple(getattr(images_uint8, 'shape', ()))}"
        )
    if mode == "pad":
        out = _pad(images, image_size)
    elif mode == "nearest":
        out = _enlarge(images, image_size)
    else:
        out = _resample(images, image_size, chunk_size)
    return out.numpy() if is_numpy else out


def _pad(images: torch.Tensor, image_size: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    if image_size < height or image_size < width:
        raise DataError(
            f"resize mode 'pad' needs image_size >= the input size, got image_size="
            f"{image_size} for {height}x{width} images; use mode 'resize' to shrink them"
        )
    top, left = (image_size - height) // 2, (image_size - width) // 2
    out = images.new_zeros((*images.shape[:2], image_size, image_size))
    out[..., top : top + height, left : left + width] = images
    return out


def _enlarge(images: torch.Tensor, image_size: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    if height != width or image_size % height:
        raise DataError(
            f"resize mode 'nearest' enlarges square images by a whole factor: image_size must "
            f"be a multiple of the input size, got image_size={image_size} for {height}x{width} "
            "images; use mode 'resize' for other sizes"
        )
    factor = image_size // height
    return images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def _resample(images: torch.Tensor, image_size: int, chunk_size: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    if height != width:
        raise DataError(
            f"resize mode 'resize' expects square images, got {height}x{width}; "
            "centre-crop them to a square first so that the aspect ratio is kept"
        )
    if height == image_size:
        return images.clone()
    from torchvision.transforms.v2 import functional as TF

    return torch.cat(
        [
            TF.resize(chunk, [image_size, image_size], antialias=True)
            for chunk in images.split(chunk_size)
        ]
    )


def check_image_size(image_size) -> None:
    """Raise :class:`DataError` unless ``image_size`` is a positive integer."""
    if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer):
        raise DataError(f"image_size must be a positive integer, got {image_size!r}")
    if image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size}")
