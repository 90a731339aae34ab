"""The whole state of a training run, in one object that saves and restores itself.

:class:`TrainState` is what a checkpoint holds: weights, EMA, optimizer, data order, every
random-generator state, the loss monitor, the log so far and the snapshots so far. Its
``state_dict()`` and ``load_state_dict()`` list that state once, so a run resumed from a
checkpoint continues exactly, bit for bit on the CPU, where the saved run stood.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch

from ..unet import UNet
from ..unet_config import UNetConfig
from .config import TrainingConfig
from .monitor import LossMonitor

__all__ = ["TrainState", "ema_decay", "learning_rate", "update_ema"]


class _BatchSampler:
    """Batches of indices from a stream of random permutations (every image once per epoch).

    A batch that reaches the end of a permutation continues into the next one, so every
    batch is full even when the dataset is smaller than the batch. The state (the current
    permutation, the position in it and the generator) is saved in checkpoints.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int):
        self.num_images = num_images
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(num_images, generator=self.generator)
        self.position = 0

    def next_batch(self) -> torch.Tensor:
        parts, needed = [], self.batch_size
        while needed:
            if self.position == self.num_images:
                self.permutation = torch.randperm(self.num_images, generator=self.generator)
                self.position = 0
            take = min(needed, self.num_images - self.position)
            parts.append(self.permutation[self.position : self.position + take])
            self.position += take
            needed -= take
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "permutation": self.permutation.clone(),
            "position": self.position,
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.permutation = state["permutation"].clone()
        self.position = int(state["position"])


def learning_rate(config: TrainingConfig, step: int) -> float:
    """Learning rate for optimizer step ``step`` (1-based): linear warm-up, then constant or,
    with ``lr_decay="cosine"``, a half cosine from the learning rate to 0 at the last step."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.learning_rate * step / config.warmup_steps
    if config.lr_decay == "cosine":
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.learning_rate


@torch.no_grad()
def update_ema(ema_model: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for ema_param, param in zip(ema_model.parameters(), model.parameters(), strict=True):
        # ema <- decay * ema + (1 - decay) * param, i.e. a step of 1 - decay towards the weights.
        ema_param.lerp_(param.detach(), 1.0 - decay)
    for ema_buffer, buffer in zip(ema_model.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def _adam(parameters, learning_rate: float, device: torch.device) -> torch.optim.Adam:
    # The fused kernel updates every parameter in one pass instead of about ten small ops per
    # tensor: on the default study's U-Net (110 tensors) Adam's step took 1.4 ms instead of
    # 4.8 ms, about 6 % of a training step (benchmarks/study_sizing.md). It exists for CPU and
    # CUDA tensors; elsewhere torch picks its usual implementation.
    fused = True if device.type in ("cpu", "cuda") else None
    return torch.optim.Adam(parameters, lr=learning_rate, fused=fused)


def ema_decay(config: TrainingConfig, step: int) -> float:
    return min(config.ema_decay, (1.0 + step) / (10.0 + step))


@dataclass
class TrainState:
    """Everything a run's future depends on; see the module docstring.

    A resumed run reports its wall time over all sessions (:meth:`elapsed`).
    """

    model: UNet
    ema_model: UNet
    optimizer: torch.optim.Optimizer
    sampler: _BatchSampler
    loss_generator: torch.Generator
    monitor: LossMonitor
    device: torch.device
    step: int = 0
    log_rows: list = field(default_factory=list)  # (step, mean loss, lr, seconds)
    snapshot_steps: list = field(default_factory=list)
    snapshot_images: list = field(default_factory=list)
    seconds_before: float = 0.0  # wall time of the sessions before this one
    session_start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Wall time of the run so far, over all its sessions."""
        return self.seconds_before + (time.perf_counter() - self.session_start)

    @classmethod
    def create(
        cls,
        unet_config: UNetConfig,
        config: TrainingConfig,
        num_images: int,
        device: torch.device,
        channels_last: bool,
    ) -> TrainState:
        """A fresh run. The initial weights come from torch's global generator, which the
        caller has seeded (it also drives dropout, and is saved with the checkpoints)."""
        model = UNet(unet_config)
        ema_model = copy.deepcopy(model).requires_grad_(False).eval()
        model.to(device)
        ema_model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
            ema_model.to(memory_format=torch.channels_last)
        return cls(
            model=model,
            ema_model=ema_model,
            optimizer=_adam(model.parameters(), config.learning_rate, device),
            sampler=_BatchSampler(num_images, config.batch_size, seed=config.seed),
            # t and the noise of L_simple come from one generator; it lives on the CPU so a
            # seed gives the same draws on any device.
            loss_generator=torch.Generator().manual_seed(config.seed + 1),
            monitor=LossMonitor(config),
            device=device,
        )

    def state_dict(self) -> dict:
        """The checkpoint content."""
        cuda = self.device.type == "cuda"
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema_model": self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "loss_generator": self.loss_generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
            "monitor": self.monitor.state_dict(),
            "log_rows": [list(row) for row in self.log_rows],
            "snapshot_steps": list(self.snapshot_steps),
            "snapshot_images": list(self.snapshot_images),
            "seconds": self.elapsed(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema_model.load_state_dict(state["ema_model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.loss_generator.set_state(state["loss_generator"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.monitor.load_state_dict(state["monitor"])
        self.step = int(state["step"])
        self.log_rows = [tuple(row) for row in state["log_rows"]]
        self.snapshot_steps = list(state["snapshot_steps"])
        self.snapshot_images = list(state["snapshot_images"])
        self.seconds_before = float(state["seconds"])
