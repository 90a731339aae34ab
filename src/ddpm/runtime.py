"""Where and how the U-Net runs: device, numeric precision, autocast, memory layout, threads.

Training and sampling both go through these helpers, so a model trained in one
precision on one device is evaluated the same way as it was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import torch

__all__ = [
    "PRECISIONS",
    "DeviceError",
    "PrecisionChoice",
    "autocast_context",
    "choose_precision",
    "noise_predictor",
    "resolve_device",
    "resolve_precision",
    "torch_threads",
    "use_channels_last",
]

PRECISIONS = ("auto", "bf16", "fp32")


class DeviceError(ValueError):
    """A device or precision cannot be used here; the message says why and what to use."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; a CUDA device that is missing is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(
            f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'"
        ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} was requested but CUDA is not available; use 'cpu' or 'auto'"
        )
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` on CUDA, ``"fp32"`` on the CPU."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


class PrecisionChoice(NamedTuple):
    """The precision a run uses, and why (written into the run record)."""

    precision: str
    reason: str


def choose_precision(
    requested: str,
    device: torch.device,
    model: torch.nn.Module | None = None,
    example_input: tuple[torch.Tensor, ...] | None = None,
) -> PrecisionChoice:
    """The precision to run ``model`` in on ``device`` for a requested ``"auto"|"bf16"|"fp32"``.

    ``model`` and ``example_input`` (the arguments of one forward pass) let ``"auto"``
    measure which precision is faster on this hardware.
    """
    precision = resolve_precision(requested, device)
    if requested != "auto":
        return PrecisionChoice(precision, f"{requested} was requested")
    return PrecisionChoice(precision, f"auto on {device.type}")


def autocast_context(device: torch.device, precision: str):
    """bf16 autocast for ``precision == "bf16"``, nothing otherwise."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def use_channels_last(device: torch.device, requested: str) -> bool:
    """channels_last speeds up cuDNN convolutions under bf16; on the CPU it does not help."""
    return device.type == "cuda" and requested == "auto"


def noise_predictor(
    model: torch.nn.Module, device: torch.device, precision: str, channels_last: bool
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``eps_model(x, t)``: ``model`` under ``precision``, in ``channels_last`` if asked, as float32."""

    def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, precision):
            return model(x, t).float()

    return eps_model


@contextmanager
def torch_threads(num_threads: int | None):
    """Run the block with ``num_threads`` intra-op threads (``None``: leave as is)."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
