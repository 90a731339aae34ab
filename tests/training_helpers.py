"""What the training tests share: a tiny U-Net, images and diffusion, a short run's settings,
and the comparison of weights.

Also imported by the child processes that the signal and lock tests start.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ddpm.diffusion import GaussianDiffusion
from ddpm.schedules import ScheduleSpec
from ddpm.spec import RunSpec
from ddpm.training.config import TrainingConfig
from ddpm.unet_config import UNetConfig

UNET = UNetConfig(
    image_size=8, base_channels=8, channel_mults=(1, 2), attention_levels=(1,), num_groups=4
)


def IMAGES() -> torch.Tensor:  # noqa: N802 - a constant, rebuilt where it is needed
    return torch.randint(
        0, 256, (24, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


SCHEDULE = ScheduleSpec("linear", "linear", 10, {"beta_start": 1e-3, "beta_end": 0.2})


def DIFFUSION() -> GaussianDiffusion:  # noqa: N802
    return GaussianDiffusion(SCHEDULE.build())


def run_spec(
    config: TrainingConfig, unet: UNetConfig = UNET, dataset: str | None = None, **diffusion
) -> RunSpec:
    """The tests' run: the linear schedule of 10 steps, the tiny U-Net, ``config``."""
    return RunSpec(
        schedule=SCHEDULE, diffusion=diffusion, unet=unet, training=config, dataset=dataset
    )


def small_config(**overrides) -> TrainingConfig:
    """Six steps, a checkpoint every two. fp32: "auto" would time both precisions on a CPU with
    native bf16, and the choice would depend on the machine running the tests."""
    values = dict(steps=6, batch_size=8, checkpoint_every=2, log_every=2, learning_rate=1e-3)
    return TrainingConfig(**{**values, "device": "cpu", "precision": "fp32", **overrides})


def ema_weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=True)["ema_state_dict"]


def assert_bit_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
