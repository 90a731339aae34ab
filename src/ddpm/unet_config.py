"""The U-Net's shape: a validated dataclass, importable without PyTorch.

:mod:`ddpm.unet` builds the network from it; the workflow's config check validates a config
with it before any job runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

from . import ConfigError

__all__ = ["UNetConfig", "unet_config_for"]


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
        attention_levels: indices into ``channel_mults`` (0 = full resolution) of the
            levels whose residual blocks are followed by self-attention, e.g. ``(2,)``
            for the 7x7 level of a 28x28 input with three levels. Counting levels, not
            pixels, lets datasets of different image sizes share one model block.
        dropout: dropout probability inside the residual blocks.
        num_groups: groups of every GroupNorm; must divide every level's channels.
    """

    image_channels: int = 1
    image_size: int = 28
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    dropout: float = 0.1
    num_groups: int = 8

    def __post_init__(self):
        # Lists from YAML/JSON become tuples so that configs compare and hash by value.
        for name in ("channel_mults", "attention_levels"):
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, str):
                object.__setattr__(self, name, tuple(value))

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Feature-map size at each level, e.g. (28, 14, 7)."""
        return tuple(self.image_size // 2**i for i in range(len(self.channel_mults)))

    def validate(self) -> UNetConfig:
        """Raise :class:`ConfigError` if no U-Net can be built from this config; return it."""
        # Later checks assume what earlier ones established (e.g. channel_mults is a tuple).
        for check in _CHECKS:
            problem = check(self)
            if problem:
                raise ConfigError(f"UNetConfig.{problem}")
        return self

    def to_dict(self) -> dict:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        out["channel_mults"] = list(self.channel_mults)
        out["attention_levels"] = list(self.attention_levels)
        return out

    @classmethod
    def from_dict(cls, values: Mapping) -> UNetConfig:
        """Build a config from a dict; unknown keys are rejected by name. Not validated."""
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ConfigError(
                f"unknown U-Net setting(s) {unknown}; the settings are {sorted(allowed)}"
            )
        return cls(**values)


def unet_config_for(model: Mapping, image_channels: int, image_size: int) -> UNetConfig:
    """The U-Net of a config ``model`` block for images of this many channels and this size."""
    return UNetConfig.from_dict(
        {**model, "image_channels": int(image_channels), "image_size": int(image_size)}
    )


def _positive_ints(config: UNetConfig) -> str | None:
    for name in ("image_channels", "image_size", "base_channels", "num_res_blocks", "num_groups"):
        value = getattr(config, name)
        if not _is_int(value) or value < 1:
            return f"{name} must be a positive integer, got {value!r}"
    return None


def _even_base_channels(config: UNetConfig) -> str | None:
    if config.base_channels % 2:
        return (
            f"base_channels must be even (it is the width of the sin/cos time embedding), "
            f"got {config.base_channels}"
        )
    return None


def _channel_mults(config: UNetConfig) -> str | None:
    mults = config.channel_mults
    if not isinstance(mults, tuple) or not mults or not all(_is_int(m) and m >= 1 for m in mults):
        return (
            f"channel_mults must be a non-empty list of positive integers (one per resolution "
            f"level, e.g. [1, 2, 2]), got {mults!r}"
        )
    return None


def _halvable_image_size(config: UNetConfig) -> str | None:
    halvings = len(config.channel_mults) - 1
    if config.image_size % 2**halvings:
        allowed = [s for s in (8, 16, 28, 32, 64, 128) if s % 2**halvings == 0]
        return (
            f"image_size={config.image_size} cannot be halved {halvings} times (channel_mults "
            f"has {halvings + 1} levels): it must be divisible by {2**halvings}, e.g. "
            f"{allowed}; or use fewer channel_mults"
        )
    return None


def _groups_divide_channels(config: UNetConfig) -> str | None:
    level_channels = [config.base_channels * mult for mult in config.channel_mults]
    for channels in level_channels:
        if channels % config.num_groups:
            fitting = [g for g in (1, 2, 4, 8, 16, 32) if all(c % g == 0 for c in level_channels)]
            return (
                f"num_groups={config.num_groups} does not divide {channels} channels (levels "
                f"have {level_channels}); choose num_groups dividing every level's channels, "
                f"e.g. one of {fitting}"
            )
    return None


def _attention_levels(config: UNetConfig) -> str | None:
    levels = config.attention_levels
    if not isinstance(levels, tuple) or not all(_is_int(level) for level in levels):
        return f"attention_levels must be a list of level indices, got {levels!r}"
    existing = list(range(len(config.channel_mults)))
    missing = sorted(set(levels) - set(existing))
    if missing:
        return (
            f"attention_levels {missing} are not levels: channel_mults "
            f"{list(config.channel_mults)} has levels {existing} (0 = full resolution); "
            "choose among those (or [] for no attention)"
        )
    return None


def _dropout(config: UNetConfig) -> str | None:
    if not isinstance(config.dropout, int | float) or not 0.0 <= config.dropout < 1.0:
        return f"dropout must be in [0, 1), got {config.dropout!r}"
    return None


_CHECKS: tuple[Callable[[UNetConfig], str | None], ...] = (
    _positive_ints,
    _even_base_channels,
    _channel_mults,
    _halvable_image_size,
    _groups_divide_channels,
    _attention_levels,
    _dropout,
)
