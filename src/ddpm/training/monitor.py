"""Watching the training loss without a host sync per step: NaN/inf and divergence.

Each step's loss stays on the device, in a list of pending 0-dim tensors; reading a loss
(``loss.item()``) would make the host wait for the device every step. The pending losses
are read in one transfer only when the run needs them: at a log row, before a snapshot or
checkpoint (so neither is ever written from weights a bad step has touched), and at a stop.
The values are then checked in step order, so a failure names the first step that went
wrong, exactly as a check at every step would.

Divergence: a run with a learning rate far too high may stay finite (gradient clipping
keeps the weights from overflowing) with a loss of 1e21. The reference level is the lower
of the first step's loss, when the freshly initialised U-Net (zero output layer) predicts
no noise at all and so scores what a model that has learnt nothing scores, and the lowest
mean over ``divergence_patience`` consecutive steps seen since. The run has diverged when
the mean of the last ``divergence_patience`` losses exceeds ``divergence_factor`` times that
level. A healthy run's loss falls from its first step on, so it never comes near 100 times
its own best; a diverged one stays orders of magnitude above it. A run that ends before its
window filled is judged at its end on the losses it has (:meth:`LossMonitor.check_end`), so a
short run that blew up is not reported as a success.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import torch

from .. import TrainingError
from .config import TrainingConfig

__all__ = ["LossMonitor"]


class LossMonitor:
    """The per-step losses of a run: pending on the device, then checked, summed, windowed.

    Its state (the current log interval, the divergence window and reference) is part of a
    checkpoint, so a resumed run raises, logs and stops exactly where the whole run would.
    """

    def __init__(self, config: TrainingConfig):
        self.factor = config.divergence_factor
        self.window: deque[float] = deque(maxlen=config.divergence_patience)
        self.reference: float | None = None  # the level divergence is measured against
        self.interval = [0.0, 0]  # sum and count of the checked losses since the last log row
        self._pending: list[tuple[int, float, torch.Tensor]] = []  # (step, lr, loss on device)

    def add(self, step: int, lr: float, loss: torch.Tensor) -> None:
        """Record the loss of optimizer step ``step`` (1-based) without reading it."""
        self._pending.append((step, lr, loss.detach().float()))

    def check(self, last_checkpoint: Callable[[int], str]) -> None:
        """Read the pending losses (one transfer); raise at the first bad step, in step order.

        ``last_checkpoint(step)`` names, for the message, the newest checkpoint before ``step``.
        """
        if not self._pending:
            return
        values = torch.stack([loss for _, _, loss in self._pending]).tolist()
        pending, self._pending = self._pending, []
        for (step, lr, _), value in zip(pending, values, strict=True):
            if not math.isfinite(value):
                raise TrainingError(
                    f"the training loss is {value} at step {step} (lr {lr:.3g}); "
                    f"{last_checkpoint(step)}. "
                    f"Lower learning_rate, enable grad_clip or use precision='fp32'"
                )
            self.interval[0] += value
            self.interval[1] += 1
            self._watch_divergence(step, lr, value, last_checkpoint)

    def _watch_divergence(self, step: int, lr: float, value: float, last_checkpoint) -> None:
        if self.reference is None:
            self.reference = value
        if self.factor is None:
            return
        self.window.append(value)
        if len(self.window) < self.window.maxlen:
            return
        self._raise_if_diverged(step, lr, last_checkpoint)
        self.reference = min(self.reference, sum(self.window) / len(self.window))

    def check_end(self, step: int, lr: float, last_checkpoint: Callable[[int], str]) -> None:
        """At the last step: the divergence check on the losses of a window not yet full."""
        if self.factor is not None and self.window and len(self.window) < self.window.maxlen:
            self._raise_if_diverged(step, lr, last_checkpoint)

    def _raise_if_diverged(self, step: int, lr: float, last_checkpoint) -> None:
        mean = sum(self.window) / len(self.window)
        if mean > self.factor * self.reference:
            first = step - len(self.window) + 1  # checkpoints from here on hold diverged weights
            raise TrainingError(
                f"the training diverged: the mean loss over the {len(self.window)} steps up to "
                f"step {step} is {mean:.3g}, more than {self.factor:g} x its early level "
                f"{self.reference:.3g} (lr {lr:.3g}); {last_checkpoint(first)}. Lower learning_rate or "
                f"use warmup_steps; to train on regardless, set divergence_factor: null"
            )

    def take_interval_mean(self) -> float:
        """The mean of the checked losses since the last call; starts the next interval."""
        total, count = self.interval
        self.interval = [0.0, 0]
        return total / count

    def state_dict(self) -> dict:
        if self._pending:
            raise RuntimeError("LossMonitor.check() must run before its state is saved")
        return {
            "interval": list(self.interval),
            "window": list(self.window),
            "reference": self.reference,
        }

    def load_state_dict(self, state: dict) -> None:
        self.interval = list(state["interval"])
        self.window.clear()
        self.window.extend(float(v) for v in state["window"])
        self.reference = state["reference"]
