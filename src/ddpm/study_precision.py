"""One precision per study and kind of machine, decided once, recorded, and reused.

``precision: auto`` times bf16 against fp32 on CPUs with native bf16 (see
:func:`ddpm.runtime.choose_precision`). Timed anew in every job, a near tie would go one way
in one cell of a study and the other way in the next, and the precision would become a hidden
variable between the schedules being compared. So the workflow decides once per dataset
(its U-Net and batch sizes), on the kind of machine its jobs run on, with more timing rounds
and a wider margin than a single job uses, and writes the decision to a file that every
training and sampling job of the study reads (:func:`decide_study_precision`). A rerun
reuses the file. A job that runs on another kind of machine (another CPU model, a GPU) does
not take a decision made elsewhere: it decides for itself and says so
(:func:`recorded_choice`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from . import ConfigError
from .files import atomic_write_text
from .provenance import cpu_model
from .runtime import PrecisionChoice, choose_precision, cpu_bf16_support
from .unet import UNet
from .unet_config import UNetConfig

__all__ = [
    "STUDY_BF16_MIN_SPEEDUP",
    "STUDY_TIMING_ROUNDS",
    "decide_study_precision",
    "machine_kind",
    "read_decision",
    "recorded_choice",
    "write_decision",
]

logger = logging.getLogger(__name__)

#: Timed rounds per precision for a study's decision; the median ratio decides, so that one
#: slow round on a shared machine cannot tip it (a single job times one round).
STUDY_TIMING_ROUNDS = 7
#: bf16 must beat fp32 by this much for a whole study to train in it: a near tie is not worth
#: fp32's precision, and on the side of fp32 the study's numbers stay comparable with a CPU
#: that has no native bf16.
STUDY_BF16_MIN_SPEEDUP = 1.2

#: Where the two parts of a study are decided: the U-Net in training mode on training batches,
#: and in eval mode on sampling batches.
_KINDS = ("train", "sample")


def machine_kind(device: torch.device) -> dict:
    """What makes two machines run a precision alike: the device's model and what it runs
    natively. CPUs: the model name, ATen's SIMD level and whether bf16 is native. GPUs: the name
    and compute capability."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return {
            "device_type": "cuda",
            "model": torch.cuda.get_device_name(index),
            "capability": f"sm_{major}{minor}",
            "native_bf16": bool(torch.cuda.is_bf16_supported(including_emulation=False)),
        }
    native, found = cpu_bf16_support()
    return {
        "device_type": device.type,
        "model": cpu_model(),
        "capability": found,
        "native_bf16": native,
    }


def decide_study_precision(
    unet_config: UNetConfig,
    *,
    train_batch_size: int,
    sample_batch_size: int,
    train_precision: str,
    sample_precision: str,
    device: torch.device,
    T: int,
) -> dict:
    """Decide the training and the sampling precision of a study on this machine.

    The U-Net is built at random initialisation (the speed of a precision does not depend on
    the weights), and ``"auto"`` is timed over :data:`STUDY_TIMING_ROUNDS` rounds at each batch
    size, each precision in the memory layout it runs in; bf16 needs a median speedup of
    :data:`STUDY_BF16_MIN_SPEEDUP`. An explicit ``"bf16"`` or ``"fp32"`` is recorded as
    requested. Returns the decision as written by :func:`write_decision`.
    """
    device = torch.device(device)
    decision: dict = {"machine": machine_kind(device)}
    requested = {"train": train_precision, "sample": sample_precision}
    batch = {"train": train_batch_size, "sample": sample_batch_size}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = UNet(unet_config.validate()).to(device)
        for kind in _KINDS:
            model.train(kind == "train")
            c, n = unet_config, batch[kind]
            x = torch.zeros(n, c.image_channels, c.image_size, c.image_size, device=device)
            t = torch.full((n,), max(1, T // 2), device=device)
            choice = choose_precision(
                requested[kind],
                device,
                model,
                (x, t),
                rounds=STUDY_TIMING_ROUNDS,
                min_speedup=STUDY_BF16_MIN_SPEEDUP,
                own_layouts=True,
                cache=False,
            )
            decision[kind] = {"precision": choice.precision, "reason": choice.reason}
            logger.info("%s precision for this study on this machine: %s", kind, choice.reason)
    return decision


def write_decision(path: str | Path, decision: Mapping) -> Path:
    return atomic_write_text(path, json.dumps(decision, indent=2) + "\n")


def read_decision(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def recorded_choice(
    decision: Mapping, kind: str, device: torch.device, source: str | Path = "the study"
) -> PrecisionChoice | None:
    """The study's ``kind`` (``"train"`` or ``"sample"``) precision if this machine is of the
    kind that decided it; None (with a log line saying why) where the job must decide itself."""
    if kind not in _KINDS:
        raise ConfigError(f"kind must be one of {_KINDS}, got {kind!r}")
    here = machine_kind(device)
    if here != decision["machine"]:
        logger.warning(
            "this machine (%s) is not the kind that decided the study's precision in %s (%s): "
            "this job decides for itself",
            _describe(here),
            source,
            _describe(decision["machine"]),
        )
        return None
    chosen = decision[kind]
    return PrecisionChoice(
        chosen["precision"], f"{chosen['reason']} (decided once for the study: {source})"
    )


def _describe(machine: Mapping) -> str:
    return f"{machine['device_type']} {machine['model']}, {machine['capability']}"
