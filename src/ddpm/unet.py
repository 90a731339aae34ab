"""The noise-prediction U-Net of Ho et al. 2020, sized by a small config.

The network maps a noisy image ``x_t`` and its timestep ``t`` to a prediction of
the noise that produced it, with the same shape as ``x_t``:

- the timestep is turned into a sinusoidal embedding (as for positions in a
  Transformer), passed through an MLP and added inside every residual block;
- residual blocks are GroupNorm -> SiLU -> 3x3 conv, twice, with dropout before
  the second conv (Ho et al. replaced PixelCNN++'s weight norm by group norm);
- single-head self-attention follows the residual blocks of the levels listed
  in ``attention_levels`` (0 = full resolution) and sits in the middle of the network;
- resolution is halved by a stride-2 conv on the way down and doubled by
  nearest-neighbour upsampling + conv on the way up; every activation saved on
  the way down is concatenated to the input of one block on the way up.

With ``image_size=28`` and ``channel_mults=(1, 2, 2)`` the levels are 28, 14 and 7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import ConfigError

# The config lives in a torch-free module so that the workflow can check it at parse time.
from .unet_config import UNetConfig

__all__ = ["UNet", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _zero_init(module: nn.Module) -> nn.Module:
    # The last layer of every residual branch starts at zero, so each block starts as
    # the identity and the initial network is well conditioned (as in Ho et al.'s code).
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style embedding of a (possibly fractional) timestep: [sin(t w_k), cos(t w_k)]."""

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        half = dim // 2
        # Frequencies w_k = max_period^(-k / (half - 1)), k = 0..half-1, from 1 down to 1/max_period.
        exponent = torch.arange(half, dtype=torch.float32) / max(half - 1, 1)
        self.register_buffer("frequencies", max_period**-exponent, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.frequencies[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv, add the time embedding, GroupNorm-SiLU-dropout-conv, plus a skip."""

    def __init__(
        self, in_channels: int, out_channels: int, time_dim: int, dropout: float, num_groups: int
    ):
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, out_channels)
        self.norm2 = nn.GroupNorm(num_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        # A 1x1 conv matches the channels of the skip path when they change.
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(F.silu(time_embedding))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over all pixels, with a residual connection (Ho et al.)."""

    def __init__(self, channels: int, num_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels)
        self.to_qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.to_out = _zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.to_qkv(self.norm(x)).reshape(n, 3, c, h * w)
        # (n, 1 head, pixels, channels); scaled_dot_product_attention scales by 1/sqrt(c).
        q, k, v = (qkv[:, i].transpose(1, 2).unsqueeze(1) for i in range(3))
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.squeeze(1).transpose(1, 2).reshape(n, c, h, w)
        return x + self.to_out(out)


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class LevelBlock(nn.Module):
    """A residual block, followed by self-attention on the levels that have it."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        time_dim: int,
        config: UNetConfig,
        attention: bool,
    ):
        super().__init__()
        self.res = ResidualBlock(
            in_channels, out_channels, time_dim, config.dropout, config.num_groups
        )
        self.attn = AttentionBlock(out_channels, config.num_groups) if attention else None

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        h = self.res(x, time_embedding)
        return self.attn(h) if self.attn is not None else h


class UNet(nn.Module):
    """Noise-prediction U-Net: ``forward(x_t, t) -> eps`` with ``eps.shape == x_t.shape``.

    Args:
        config: the architecture; validated here (raises :class:`ConfigError`).
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = config = (config or UNetConfig()).validate()
        base = config.base_channels
        time_dim = 4 * base
        groups, dropout = config.num_groups, config.dropout

        self.time_embedding = nn.Sequential(
            SinusoidalTimeEmbedding(base),
            nn.Linear(base, time_dim),
            nn.SiLU(),
            nn.Linear(time_dim, time_dim),
        )
        self.input_conv = nn.Conv2d(config.image_channels, base, 3, padding=1)

        # Way down. ``skip_channels`` records the channels of every activation pushed on
        # the skip stack, in order, so the way up knows what it will concatenate.
        self.down = nn.ModuleList()
        skip_channels = [base]
        channels = base
        last_level = len(config.channel_mults) - 1
        for level, mult in enumerate(config.channel_mults):
            out_channels = base * mult
            use_attention = level in config.attention_levels
            for _ in range(config.num_res_blocks):
                self.down.append(
                    LevelBlock(channels, out_channels, time_dim, config, use_attention)
                )
                channels = out_channels
                skip_channels.append(channels)
            if level != last_level:
                self.down.append(Downsample(channels))
                skip_channels.append(channels)

        self.middle = nn.ModuleList(
            [
                ResidualBlock(channels, channels, time_dim, dropout, groups),
                AttentionBlock(channels, groups),
                ResidualBlock(channels, channels, time_dim, dropout, groups),
            ]
        )

        # Way up: one more block per level than on the way down, each eating one skip.
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mults))):
            out_channels = base * mult
            use_attention = level in config.attention_levels
            for _ in range(config.num_res_blocks + 1):
                in_channels = channels + skip_channels.pop()
                self.up.append(
                    LevelBlock(in_channels, out_channels, time_dim, config, use_attention)
                )
                channels = out_channels
            if level != 0:
                self.up.append(Upsample(channels))
        assert not skip_channels, "every skip connection must be consumed"

        self.output = nn.Sequential(
            nn.GroupNorm(groups, channels),
            nn.SiLU(),
            _zero_init(nn.Conv2d(channels, config.image_channels, 3, padding=1)),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor | float | int) -> torch.Tensor:
        """Predict the noise in ``x`` (N, C, H, W) at timesteps ``t`` (shape (N,) or a scalar).

        ``t`` may be integer steps (1..T) or real numbers; both go through the same
        sinusoidal embedding.
        """
        c = self.config
        if x.dim() != 4 or x.shape[1:] != (c.image_channels, c.image_size, c.image_size):
            raise ConfigError(
                f"UNet expects images of shape (N, {c.image_channels}, {c.image_size}, {c.image_size}), "
                f"got {tuple(x.shape)}"
            )
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ConfigError(
                f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}"
            )

        time_embedding = self.time_embedding(t)
        h = self.input_conv(x)
        skips = [h]
        for block in self.down:
            h = block(h) if isinstance(block, Downsample) else block(h, time_embedding)
            skips.append(h)

        h = self.middle[0](h, time_embedding)
        h = self.middle[1](h)
        h = self.middle[2](h, time_embedding)

        for block in self.up:
            if isinstance(block, Upsample):
                h = block(h)
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), time_embedding)
        return self.output(h)
