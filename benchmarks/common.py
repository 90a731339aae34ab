"""What the benchmarks share; not a benchmark itself.

The benchmarks measure the study, so they take it from where the workflow does: the study
config (``config/config.yaml``, an overlay merged on where one is named), its runs built by
:meth:`ddpm.spec.RunSpec.from_study_config` and trained by :func:`ddpm.training.loop.train`,
and its scoring (:func:`ddpm.evaluation.study.score_samples` with the config's ``scoring``
section and the domain classifier trained as the study trains it). A change to the study is
then a change to what the benchmarks measure.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ddpm.data.prepare import prepare_dataset
from ddpm.data.store import load_split
from ddpm.evaluation.classifier import read_classifier_config, train_classifier
from ddpm.evaluation.study import draw_real_set, score_samples
from ddpm.provenance import cpu_model
from ddpm.runtime import autocast_context, cpu_bf16_support
from ddpm.spec import RunSpec
from ddpm.training.config import LR_DECAYS
from ddpm.workflow.config_load import resolve_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
CPU = torch.device("cpu")

#: How the benchmarks train ours: on the CPU in float32 with one thread, and without the EMA
#: sample snapshots, whose sampling would count as training time.
BENCHMARK_TRAINING = {
    "device": "cpu",
    "precision": "fp32",
    "num_threads": 1,
    "snapshot_every": None,
}

# Command-line option -> the entry of the study's training section it replaces.
_TRAINING_OPTIONS = {
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "warmup_steps": "warmup_steps",
    "lr_decay": "lr_decay",
    "grad_clip": "grad_clip",
    "ema_decay": "ema_decay",
}


def study_config(*overlays: str | Path) -> dict:
    """``config/config.yaml`` with ``overlays`` merged on in order, as the workflow reads them."""
    return resolve_config(CONFIG_DIR / "config.yaml", overlays)


def cell_spec(config, dataset, schedule, T, seed, image_shape, **training) -> RunSpec:
    """The grid cell (``schedule``, ``T``, ``seed``) of ``config`` as a benchmark trains it
    (:data:`BENCHMARK_TRAINING`); ``training`` replaces entries of the config's training section."""
    overrides = {**BENCHMARK_TRAINING, **training}
    return RunSpec.from_study_config(config, dataset, schedule, T, seed, image_shape, **overrides)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that replace entries of the study's training section (each defaults to it)."""
    group = parser.add_argument_group("training (default: the study's, config/config.yaml)")
    group.add_argument("--steps", type=int)
    group.add_argument("--batch-size", type=int)
    group.add_argument("--lr", type=float, help="Adam's learning rate after the warm-up")
    group.add_argument("--warmup-steps", type=int)
    group.add_argument("--lr-decay", choices=LR_DECAYS, help="after the warm-up")
    group.add_argument("--grad-clip", type=float, help="0: no clipping")
    group.add_argument("--ema-decay", type=float)


def arguments_spec(args: argparse.Namespace, config, dataset, image_shape) -> RunSpec:
    """:func:`cell_spec` of the cell ``args.schedule``, ``args.T``, ``args.seed`` with the
    training options given on the command line (:func:`add_training_arguments`)."""
    given = {
        entry: getattr(args, option)
        for option, entry in _TRAINING_OPTIONS.items()
        if getattr(args, option) is not None
    }
    if given.get("grad_clip") == 0:
        given["grad_clip"] = None  # the library's "no clipping"
    return cell_spec(config, dataset, args.schedule, args.T, args.seed, image_shape, **given)


@dataclass(frozen=True)
class Data:
    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])


def load_data(config, dataset: str, work: Path, image_size: int | None = None) -> Data:
    """``dataset`` prepared once in ``work`` with the study's options for it (``image_size``,
    where given, replacing the study's)."""
    options = dict(config["dataset_options"].get(dataset) or {})
    if image_size is not None:
        options["image_size"] = image_size
    path = work / f"{dataset}-{options.get('image_size', 'native')}.npz"
    if not path.exists():
        prepare_dataset(dataset, path, **options)
    return Data(dataset, *load_split(path, "train"), *load_split(path, "test"))


class Scorer:
    """Scoring as the study scores: the domain classifier trained with the study's
    ``scoring.classifier`` settings and the study's KID, IS and precision/recall options, the
    classifier's features only and without the bootstrap spread; and the real floor, ``n``
    real images drawn from outside the test set and scored the same way.

    The classifier is trained once per work folder and number of epochs. Scoring ``n``
    images fewer than the study's ``scoring.kid_subset_size`` is refused here, before any
    training, by the library's check.
    """

    def __init__(self, config, data: Data, n: int, work: Path, epochs: int | None = None):
        classifier = dict(config["scoring"]["classifier"])
        if epochs is not None:
            classifier["epochs"] = epochs
        size = data.test_images.shape[-1]
        self.weights = work / f"classifier-{data.name}-{size}-e{classifier['epochs']}.pt"
        if not self.weights.exists():
            train_classifier(
                data.train_images,
                data.train_labels,
                data.test_images,
                data.test_labels,
                self.weights,
                device="cpu",
                **classifier,
            )
        self.test_accuracy = read_classifier_config(self.weights)["training"]["test_accuracy"]
        self.test_images = data.test_images
        self.settings = {
            "dataset": data.name,
            "classifier_path": self.weights,
            "inception_status": {"weights_path": None, "reason": "benchmarks use the classifier"},
            "cache_dir": work / "fidelity-cache",
            "options": {**config["scoring"], "bootstrap_resamples": 0},
            "device": "cpu",
        }
        self.real = draw_real_set(data.train_images, data.test_images, n)
        self.floor = self(self.real)

    def __call__(self, images: torch.Tensor) -> dict:
        """The study's metric columns (``classifier_fid``, ``classifier_is_mean``, ...)."""
        return score_samples(images, self.test_images, **self.settings)


def describe_cpu() -> str:
    """The CPU model, whether it runs bf16 natively, and the level of torch's kernels."""
    native, found = cpu_bf16_support()
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"{cpu_model()}; native bf16: {'yes' if native else 'no'} ({found}); kernels {capability}"
    )


def median_seconds(step: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall seconds of ``step`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_images_per_second(model, batch_size, image_size, precision, warmup, repeats) -> float:
    """Images per second of a training step of ``model(x, t)`` on random data: forward, MSE to
    the noise, backward, Adam; under bf16 autocast where ``precision`` is ``"bf16"``."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 1, image_size, image_size, generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    t = torch.randint(1, 1001, (batch_size,), generator=generator)

    def step():
        with autocast_context(CPU, precision):
            prediction = model(x, t)
        loss = F.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch_size / median_seconds(step, warmup, repeats)
