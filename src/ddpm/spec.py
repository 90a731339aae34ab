"""What defines a run: one schedule spec and one run spec, built once and recorded.

:class:`ScheduleSpec` is a labelled beta schedule with its T and parameters; it builds the
:class:`~ddpm.schedules.NoiseSchedule`. :class:`RunSpec` is one grid cell: schedule,
diffusion options, U-Net, training settings and dataset. The workflow builds it from the
study config (:meth:`RunSpec.from_study_config`), ``ddpm train`` from its options; training
writes :meth:`RunSpec.to_dict` into ``model.pt`` and ``run.json`` (the record's
``schedule``, ``diffusion``, ``unet``, ``training`` and ``dataset`` entries), and
:func:`ddpm.checkpoints.load_model` and the results table read it back with
:meth:`RunSpec.from_dict`.

Importing this module needs neither NumPy nor PyTorch (the workflow's config check uses
it); building the schedule, diffusion or training settings imports them then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .unet_config import UNetConfig, upgrade_record

# The schedule, diffusion and training classes are imported where they are built: importing
# them at run time would import PyTorch, and the workflow's import scan would count them as
# inputs of every script that reads a spec. The annotations need them only for type checkers.
if TYPE_CHECKING:
    from .diffusion import GaussianDiffusion
    from .schedules import NoiseSchedule
    from .training.config import TrainingConfig

__all__ = ["RunSpec", "ScheduleSpec", "SpecError", "diffusion_options", "unet_config_for"]


class SpecError(ValueError):
    """A run or schedule definition is incomplete; the message names the missing entry."""


def _frozen_items(values: Mapping | tuple | None) -> tuple[tuple[str, Any], ...]:
    """A mapping as sorted ``(key, value)`` pairs, lists as tuples: hashable and ordered."""
    items = values.items() if isinstance(values, Mapping) else (values or ())
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in items))


@dataclass(frozen=True)
class ScheduleSpec:
    """A labelled noise schedule.

    Args:
        label: the name the study gives this schedule (a config key such as ``linear_scaled``);
            several labels may share one ``beta_schedule`` with different parameters.
        beta_schedule: the formula, a key of :data:`ddpm.beta_formulas.FORMULAS`.
        T: number of diffusion steps.
        params: the formula's parameters (a mapping; stored as sorted pairs).
    """

    label: str
    beta_schedule: str
    T: int
    params: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "params", _frozen_items(self.params))
        object.__setattr__(self, "T", int(self.T))

    @property
    def parameters(self) -> dict:
        """``params`` as a dict, as :func:`ddpm.schedules.make_schedule` takes them."""
        return dict(self.params)

    @classmethod
    def from_definition(cls, label: str, definition: Mapping, T: int) -> ScheduleSpec:
        """A config definition ``{"beta_schedule": name, "params": {...}}`` at ``T`` steps."""
        if "beta_schedule" not in definition:
            raise SpecError(
                f"schedule {label!r} has no 'beta_schedule' entry; give its name, e.g. linear"
            )
        return cls(label, definition["beta_schedule"], T, definition.get("params") or {})

    def build(self) -> NoiseSchedule:
        """The schedule (parameters checked by name, defaults filled in)."""
        from .schedules import make_schedule

        return make_schedule(self.beta_schedule, self.T, **self.parameters).labelled(self.label)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "beta_schedule": self.beta_schedule,
            "T": self.T,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params},
        }

    @classmethod
    def from_dict(cls, values: Mapping) -> ScheduleSpec:
        """The inverse of :meth:`to_dict`; without a ``label`` the beta schedule names it."""
        missing = [key for key in ("beta_schedule", "T") if key not in values]
        if missing:
            raise SpecError(f"a schedule spec needs {missing}, got keys {sorted(values)}")
        label = values.get("label") or values["beta_schedule"]
        return cls(label, values["beta_schedule"], values["T"], values.get("params") or {})


def diffusion_options(config: Mapping, label: str) -> dict:
    """The diffusion options of the runs of schedule ``label`` in a study config.

    A schedule definition may carry a ``diffusion`` mapping of its own (e.g.
    ``{"prediction": "x0"}``): its entries replace the study's ``diffusion`` section for that
    label, so that one study can compare diffusion options as labels of the same schedule.
    """
    own = (config["schedules"].get(label) or {}).get("diffusion") or {}
    return {**(config.get("diffusion") or {}), **own}


def unet_config_for(model: Mapping, image_channels: int, image_size: int) -> UNetConfig:
    """The U-Net of a config ``model`` block for images of this many channels and this size."""
    return UNetConfig.from_dict(
        {**model, "image_channels": int(image_channels), "image_size": int(image_size)}
    )


def _training_config(values: Mapping) -> TrainingConfig:
    from .training.config import TrainingConfig

    return TrainingConfig.from_dict(values)


@dataclass(frozen=True)
class RunSpec:
    """One training run: everything that decides its weights, and the dataset it names.

    Args:
        schedule: the noise schedule.
        diffusion: keyword options of :class:`~ddpm.diffusion.GaussianDiffusion`
            (``variance``, ``loss``, ``clip_denoised``, ``prediction``; a mapping, stored as
            sorted pairs).
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
        object.__setattr__(self, "diffusion", _frozen_items(self.diffusion))

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
            training=_training_config(training),
            dataset=dataset,
        )

    def build(self) -> tuple[GaussianDiffusion, UNetConfig, TrainingConfig]:
        """(diffusion, U-Net config, training config), validated, ready for training."""
        from .diffusion import GaussianDiffusion

        diffusion = GaussianDiffusion(self.schedule.build(), **dict(self.diffusion))
        return diffusion, self.unet.validate(), self.training.validate()

    def train(self, images, run_dir, record: Mapping | None = None):
        """Train this run on ``images`` into ``run_dir`` (see :func:`ddpm.training.train`).

        The record of ``model.pt`` and ``run.json`` holds :meth:`to_dict` (the dataset's
        name at its top level) and the extra entries of ``record``.
        """
        from .training import train

        extra = {} if self.dataset is None else {"dataset": self.dataset}
        return train(images, *self.build(), run_dir, record={**extra, **(record or {})})

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
            raise SpecError(f"a run record needs {missing}, got keys {sorted(record)}")
        schedule = dict(record["schedule"])
        # Records written before the label moved into the schedule kept it at the top level.
        schedule.setdefault("label", record.get("schedule_label"))
        return cls(
            schedule=ScheduleSpec.from_dict(schedule),
            diffusion=record["diffusion"],
            unet=UNetConfig.from_dict(upgrade_record(record["unet"])),
            training=_training_config(record["training"]),
            dataset=record.get("dataset"),
        )
