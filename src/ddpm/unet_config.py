"""The U-Net's shape: a validated dataclass, importable without PyTorch.

:mod:`ddpm.unet` builds the network from it and re-exports it; the workflow's config check
validates a config with it before any job runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

__all__ = ["UNetConfig", "UNetConfigError"]


class UNetConfigError(ValueError):
    """A U-Net setting is impossible; the message names the key and what is allowed."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class UNetConfig:
    """Shape of the U-Net.

    Args:
        image_channels: channels of the images (1 for grey, 3 for colour).
        image_size: height and width of the (square) images.
        base_channels: channels of the first level; level ``i`` has
            ``base_channels * channel_mults[i]``. Also the width of the sinusoidal
            time embedding (the MLP widens it to ``4 * base_channels``).
        channel_mults: one multiplier per resolution level; there are
            ``len(channel_mults)`` levels and ``len(channel_mults) - 1`` halvings.
        num_res_blocks: residual blocks per level on the way down (one more on
            the way up, which also consumes the downsampling's skip).
        attention_resolutions: feature-map sizes (e.g. ``(7,)`` for 28x28 input)
            after whose residual blocks self-attention is applied.
        dropout: dropout probability inside the residual blocks.
        num_groups: groups of every GroupNorm; must divide every level's channels.
    """

    image_channels: int = 1
    image_size: int = 28
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (7,)
    dropout: float = 0.1
    num_groups: int = 8

    def __post_init__(self):
        # Lists from YAML/JSON become tuples so that configs compare and hash by value.
        for name in ("channel_mults", "attention_resolutions"):
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, str):
                object.__setattr__(self, name, tuple(value))

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Feature-map size at each level, e.g. (28, 14, 7)."""
        return tuple(self.image_size // 2**i for i in range(len(self.channel_mults)))

    def validate(self) -> UNetConfig:
        """Raise :class:`UNetConfigError` if no U-Net can be built from this config; return it."""
        for name in (
            "image_channels",
            "image_size",
            "base_channels",
            "num_res_blocks",
            "num_groups",
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise UNetConfigError(
                    f"UNetConfig.{name} must be a positive integer, got {value!r}"
                )
        if self.base_channels % 2:
            raise UNetConfigError(
                f"UNetConfig.base_channels must be even (it is the width of the sin/cos time "
                f"embedding), got {self.base_channels}"
            )
        mults = self.channel_mults
        if (
            not isinstance(mults, tuple)
            or not mults
            or not all(_is_int(m) and m >= 1 for m in mults)
        ):
            raise UNetConfigError(
                f"UNetConfig.channel_mults must be a non-empty list of positive integers "
                f"(one per resolution level, e.g. [1, 2, 2]), got {mults!r}"
            )
        halvings = len(mults) - 1
        if self.image_size % 2**halvings:
            allowed = [s for s in (8, 16, 28, 32, 64, 128) if s % 2**halvings == 0]
            raise UNetConfigError(
                f"UNetConfig.image_size={self.image_size} cannot be halved {halvings} times "
                f"(channel_mults has {len(mults)} levels): it must be divisible by {2**halvings}, "
                f"e.g. {allowed}; or use fewer channel_mults"
            )
        level_channels = [self.base_channels * mult for mult in mults]
        for channels in level_channels:
            if channels % self.num_groups:
                fitting = [
                    g for g in (1, 2, 4, 8, 16, 32) if all(c % g == 0 for c in level_channels)
                ]
                raise UNetConfigError(
                    f"UNetConfig.num_groups={self.num_groups} does not divide {channels} channels "
                    f"(levels have {level_channels}); choose num_groups dividing every level's "
                    f"channels, e.g. one of {fitting}"
                )
        attention = self.attention_resolutions
        if not isinstance(attention, tuple) or not all(_is_int(r) for r in attention):
            raise UNetConfigError(
                f"UNetConfig.attention_resolutions must be a list of feature-map sizes, got {attention!r}"
            )
        unreachable = sorted(set(attention) - set(self.resolutions))
        if unreachable:
            raise UNetConfigError(
                f"UNetConfig.attention_resolutions {list(unreachable)} are never reached: with "
                f"image_size {self.image_size} and {len(mults)} levels the feature maps are "
                f"{list(self.resolutions)}; choose among those (or [] for no attention)"
            )
        if not isinstance(self.dropout, int | float) or not 0.0 <= self.dropout < 1.0:
            raise UNetConfigError(f"UNetConfig.dropout must be in [0, 1), got {self.dropout!r}")
        return self

    def to_dict(self) -> dict:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        out["channel_mults"] = list(self.channel_mults)
        out["attention_resolutions"] = list(self.attention_resolutions)
        return out

    @classmethod
    def from_dict(cls, values: Mapping) -> UNetConfig:
        """Build a config from a dict; unknown keys are rejected by name. Not validated."""
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise UNetConfigError(
                f"unknown U-Net setting(s) {unknown}; the settings are {sorted(allowed)}"
            )
        return cls(**values)
