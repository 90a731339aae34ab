"""What defines a run: :class:`RunSpec`, built once, recorded, and read back.

A run spec is one grid cell: its schedule (:class:`~ddpm.schedules.ScheduleSpec`), the
diffusion options, the U-Net, the training settings and the dataset's name. The workflow
builds it from the study config (:meth:`RunSpec.from_study_config`), ``ddpm train`` from its
options; :func:`ddpm.training.loop.train` takes it and writes :meth:`RunSpec.to_dict` into
``model.pt`` and ``run.json``, and derives the checkpoint identity from it; and
:func:`ddpm.checkpoints.load_model` and the results table read it back with
:meth:`RunSpec.from_dict`. Every part is complete (defaults filled in), so the record says
everything that decides a run's weights.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import ConfigError
from .diffusion import GaussianDiffusion
from .schedules import ScheduleSpec, frozen_items
from .training.config import TrainingConfig
from .unet_config import UNetConfig, unet_config_for
from .workflow.config_load import diffusion_options

__all__ = ["RunSpec"]


def _diffusion_options(given: Mapping | tuple) -> tuple[tuple[str, Any], ...]:
    """The keyword options of :class:`GaussianDiffusion`, defaults filled in; unknown ones raise."""
    parameters = inspect.signature(GaussianDiffusion.__init__).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    options = dict(frozen_items(given))
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ConfigError(
            f"diffusion has no option {', '.join(map(repr, unknown))}; "
            f"its options are {sorted(defaults)}"
        )
    return frozen_items({**defaults, **options})


@dataclass(frozen=True)
class RunSpec:
    """One training run: everything that decides its weights, and the dataset it names.

    Args:
        schedule: the noise schedule.
        diffusion: keyword options of :class:`~ddpm.diffusion.GaussianDiffusion`
            (``variance``, ``loss``, ``clip_denoised``, ``prediction``; a mapping, stored with the defaults
            filled in as sorted pairs).
        unet: the U-Net, its image channels and size those of the data.
        training: optimisation, checkpointing and logging; its ``seed`` is the run's seed.
        dataset: the dataset's name (``None`` for data given as a file alone).
    """

    schedule: ScheduleSpec
    diffusion: tuple[tuple[str, Any], ...]
    unet: UNetConfig
    training: TrainingConfig
    dataset: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "diffusion", _diffusion_options(self.diffusion))

    @property
    def seed(self) -> int:
        return self.training.seed

    @classmethod
    def from_study_config(
        cls,
        config: Mapping,
        dataset: str,
        label: str,
        T: int,
        seed: int,
        image_shape: tuple[int, ...],
        **training_overrides,
    ) -> RunSpec:
        """The grid cell (``dataset``, ``label``, ``T``, ``seed``) of a study config.

        ``image_shape`` is (C, H, W) of the data; ``training_overrides`` replace entries of
        the config's ``training`` section (e.g. the ``device`` and ``num_threads`` of a job).
        The diffusion options are the config's ``diffusion`` section with the label's own
        ``diffusion`` entries over it (:func:`diffusion_options`).
        """
        channels, size = image_shape[0], image_shape[-1]
        training = {**config["training"], "seed": int(seed), **training_overrides}
        return cls(
            schedule=ScheduleSpec.from_definition(label, config["schedules"][label], T),
            diffusion=diffusion_options(config, label),
            unet=unet_config_for(config["model"], channels, size),
            training=TrainingConfig.from_dict(training),
            dataset=dataset,
        )

    def build(self) -> tuple[GaussianDiffusion, UNetConfig, TrainingConfig]:
        """(diffusion, U-Net config, training config), validated, ready for training."""
        diffusion = GaussianDiffusion(self.schedule.build(), **dict(self.diffusion))
        return diffusion, self.unet.validate(), self.training.validate()

    def to_dict(self) -> dict:
        """The record entries of this run (what ``model.pt`` and ``run.json`` hold)."""
        return {
            "dataset": self.dataset,
            "schedule": self.schedule.to_dict(),
            "diffusion": dict(self.diffusion),
            "unet": self.unet.to_dict(),
            "training": self.training.to_dict(),
        }

    @classmethod
    def from_dict(cls, record: Mapping) -> RunSpec:
        """The run spec of a record (:meth:`to_dict`, or a whole ``model.pt``/``run.json`` record)."""
        missing = [
            key for key in ("schedule", "diffusion", "unet", "training") if key not in record
        ]
        if missing:
            raise ConfigError(
                f"a run record needs {missing}, got keys {sorted(record)}; it was written by "
                "another version of this library: train the run again"
            )
        return cls(
            schedule=ScheduleSpec.from_dict(record["schedule"]),
            diffusion=record["diffusion"],
            unet=UNetConfig.from_dict(record["unet"]),
            training=TrainingConfig.from_dict(record["training"]),
            dataset=record.get("dataset"),
        )
