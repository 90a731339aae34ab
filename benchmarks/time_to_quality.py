"""Time to quality: our training loop and U-Net next to diffusers' and lucidrains', in one process.

Every system trains on the same data (the embedded mnist5k digits through
``ddpm.data.prepare_dataset``), with the same linear schedule and T, batch size, optimiser
settings (Adam, learning-rate warm-up, gradient clipping, EMA), float32 and one thread, for the
same wall-clock time; each samples the same number of images by ancestral sampling over all T
steps (x_0 clipped, variance beta tilde) under ``torch.inference_mode``, and the samples are
scored by the same domain classifier through torch-fidelity (``ddpm.evaluation``).

Quality is measured at ``--marks`` evenly spaced moments of the budget (the EMA weights then),
so the table also says when each system first reached the FID the faster peer (the one with the
higher training throughput) ends with. Throughput leaves out the first steps (warm-up).

Usage::

    python benchmarks/time_to_quality.py   # about 8 min on a busy 2-core machine
    python benchmarks/time_to_quality.py --budget 20 --samples 128 --marks 2
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from budget_training import Optimisation, TrainingRun, train_ours, train_peer
from loop_overhead import bare_loop_run, print_overhead, step_parts_ms
from peers import diffusers_system, lucidrains_betas, lucidrains_system
from ttq_report import Evaluation, SystemResult, print_report

from ddpm.data.prepare import prepare_dataset
from ddpm.data.store import load_split
from ddpm.diffusion import GaussianDiffusion, from_model_range
from ddpm.evaluation.classifier import train_classifier
from ddpm.evaluation.floor import real_floor
from ddpm.evaluation.reference_cache import reference_cache_name
from ddpm.evaluation.scoring import compute_metrics
from ddpm.schedules import make_schedule
from ddpm.unet import UNet, count_parameters
from ddpm.unet_config import UNetConfig

DATASET = "mnist5k"


def describe_cpu() -> str:
    """The CPU model, whether it has native bf16 instructions, and torch's kernel level."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    native = f"yes ({', '.join(bf16)})" if bf16 else "no (bf16 would be emulated)"
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{model}; native bf16: {native}; torch kernels: {capability}"


@dataclass(frozen=True)
class Data:
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_data(image_size: int, work_dir: Path) -> Data:
    path = work_dir / f"{DATASET}-{image_size}.npz"
    prepare_dataset(DATASET, path, image_size)
    return Data(*load_split(path, "train"), *load_split(path, "test"))


def _sample_in_batches(draw, n: int, batch: int) -> torch.Tensor:
    return torch.cat([draw(min(batch, n - start)) for start in range(0, n, batch)])


def _peer_sampler(system):
    def sample(state: dict, n: int, batch: int) -> torch.Tensor:
        module = copy.deepcopy(system.module)
        module.load_state_dict(state)
        module.eval()
        return _sample_in_batches(lambda k: system.sample(module, k), n, batch)

    return sample


def _ours_sampler(unet_config: UNetConfig, diffusion: GaussianDiffusion, seed: int):
    def sample(state: dict, n: int, batch: int) -> torch.Tensor:
        model = UNet(unet_config)
        model.load_state_dict(state)
        model.eval()
        generator = torch.Generator().manual_seed(seed)
        size = (unet_config.image_channels, unet_config.image_size, unet_config.image_size)
        return _sample_in_batches(
            lambda k: diffusion.sample(model, (k, *size), generator=generator), n, batch
        )

    return sample


class Scorer:
    """The domain classifier of the dataset, and torch-fidelity's metrics through it."""

    def __init__(self, data: Data, samples: int, work_dir: Path, seed: int):
        self.weights = work_dir / "classifier.pt"
        self.summary = train_classifier(
            data.train_images,
            data.train_labels,
            data.test_images,
            data.test_labels,
            self.weights,
            seed=seed,
            device="cpu",
        )
        image_size = data.test_images.shape[-1]
        self.reference = data.test_images
        self.options = {
            "extractor": "classifier",
            "weights_path": self.weights,
            "reference_cache_key": reference_cache_name(
                DATASET, "test", image_size, "classifier", len(data.test_images)
            ),
            "cache_dir": work_dir / "fidelity-cache",
            "kid_subset_size": min(100, samples),
            "kid_subsets": 50,
            "isc_splits": min(5, samples),
            "device": "cpu",
        }
        floor = real_floor(data.train_images, self.reference, samples, seed=seed, **self.options)
        self.real_fid, self.real_is = floor["classifier_fid"], floor["classifier_is_mean"]

    def __call__(self, images_uint8: torch.Tensor) -> tuple[float, float]:
        metrics = compute_metrics(images_uint8, self.reference, **self.options)
        return metrics["classifier_fid"], metrics["classifier_is_mean"]


def evaluate(run: TrainingRun, sampler, scorer: Scorer, args, T: int) -> SystemResult:
    """Sample and score every snapshot of ``run``; time the sampling."""
    evaluations = []
    for snapshot in run.snapshots:
        torch.manual_seed(args.seed)  # the peers draw their sampling noise from the global RNG
        started, cpu_started = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            images = sampler(snapshot.ema_state, args.samples, args.sample_batch)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        fid, inception_score = scorer(from_model_range(images))
        evaluations.append(
            Evaluation(
                seconds=snapshot.seconds,
                steps=snapshot.steps,
                fid=fid,
                inception_score=inception_score,
                sample_ms=1000.0 * seconds / (args.samples * T),
                sample_cpu_ms=1000.0 * cpu_seconds / (args.samples * T),
            )
        )
    return SystemResult(run=run, evaluations=evaluations)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--budget", type=float, default=60.0, help="training seconds per system")
    add("--marks", type=int, default=3, help="moments of the budget at which quality is measured")
    add("--samples", type=int, default=256, help="images sampled (and scored) per moment")
    add("--sample-batch", type=int, default=256, help="images per sampling batch")
    add("--image-size", type=int, default=16, help="side of the digits (a multiple of 4)")
    add("--T", type=int, default=50, help="diffusion steps, for training and sampling")
    add("--base-channels", type=int, default=16, help="U-Net width (16: 280k parameters)")
    add("--lucidrains-heads", type=int, default=1, help="its attention heads (size matching)")
    add("--lucidrains-head-dim", type=int, default=16, help="its attention head width")
    add("--batch-size", type=int, default=64)
    add("--learning-rate", type=float, default=1e-3)
    add("--warmup-steps", type=int, default=40)
    add("--grad-clip", type=float, default=1.0)
    add("--ema-decay", type=float, default=0.995)
    add("--seed", type=int, default=0)
    add("--work-dir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.image_size % 4 or args.image_size < 8:
        parser.error(f"--image-size must be a multiple of 4 and at least 8, got {args.image_size}")
    for name in ("marks", "samples", "sample_batch", "T", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.T <= 20:
        parser.error(
            f"--T must be more than 20: the linear schedule rescaled to T ends at beta = 20 / T, "
            f"which must stay below 1; got {args.T}"
        )
    if args.samples < 10:
        parser.error("--samples must be at least 10 (FID needs a covariance, IS several splits)")
    return args


def _ours(args) -> tuple[UNetConfig, GaussianDiffusion]:
    schedule = make_schedule("linear", args.T, beta_start=1e-4, beta_end=0.02, rescale_to_T=True)
    # lucidrains' "linear" schedule is fixed in its code: check that ours is the same.
    if not np.allclose(schedule.betas, lucidrains_betas(args.T), rtol=1e-6, atol=0):
        raise RuntimeError("our linear betas differ from lucidrains'; the comparison is unfair")
    unet_config = UNetConfig(
        image_channels=1,
        image_size=args.image_size,
        base_channels=args.base_channels,
        channel_mults=(1, 2, 2),
        num_res_blocks=1,
        attention_levels=(2,),  # image_size // 4 with three levels
        dropout=0.0,
        num_groups=8,
    )
    # beta tilde, as both peers' samplers use.
    return unet_config, GaussianDiffusion(schedule, variance="beta_tilde", clip_denoised=True)


def run(args, work_dir: Path) -> tuple[list[SystemResult], Scorer, tuple[TrainingRun, dict]]:
    """Train, sample and score every system; also our loop against the bare one."""
    data = load_data(args.image_size, work_dir)
    scorer = Scorer(data, args.samples, work_dir, args.seed)
    optimisation = Optimisation(
        args.batch_size,
        args.learning_rate,
        args.warmup_steps,
        args.grad_clip,
        args.ema_decay,
        args.seed,
    )
    unet_config, diffusion = _ours(args)
    ours = train_ours(
        data.train_images, diffusion, unet_config, optimisation, args.budget, args.marks, work_dir
    )
    print(f"trained ours; load average {os.getloadavg()[0]:.2f}", flush=True)
    overhead = (
        bare_loop_run(
            data.train_images, diffusion, unet_config, optimisation, max(2.0, args.budget / 6)
        ),
        step_parts_ms(
            data.train_images, diffusion, unet_config, args.batch_size, ours.last_checkpoint
        ),
    )
    results = [
        evaluate(ours, _ours_sampler(unet_config, diffusion, args.seed), scorer, args, args.T)
    ]
    moments = [snapshot.seconds for snapshot in ours.snapshots]
    for build in (
        lambda: diffusers_system(
            diffusion.schedule.betas, args.image_size, args.base_channels, 0.0
        ),
        lambda: lucidrains_system(
            args.T,
            args.image_size,
            args.base_channels,
            0.0,
            args.lucidrains_heads,
            args.lucidrains_head_dim,
        ),
    ):
        torch.manual_seed(args.seed)  # the initial weights
        system = build()
        trained = train_peer(
            system.name,
            system.module,
            system.loss,
            data.train_images,
            optimisation,
            moments,
            count_parameters(system.network),
        )
        print(f"trained {system.name}; load average {os.getloadavg()[0]:.2f}", flush=True)
        results.append(evaluate(trained, _peer_sampler(system), scorer, args, args.T))
    return results, scorer, overhead


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    print(f"CPU: {describe_cpu()}")
    print(
        f"torch {torch.__version__}; float32 for every system; 1 thread; {DATASET} at "
        f"{args.image_size}x{args.image_size}; linear schedule (1e-4..0.02 x 1000/T), T={args.T}; "
        f"batch {args.batch_size}, Adam lr {args.learning_rate:g} (warm-up {args.warmup_steps}), "
        f"clip {args.grad_clip:g}, EMA {args.ema_decay:g}; {args.budget:g} s per system, quality "
        f"at {args.marks} moment(s) from {args.samples} ancestral samples (T steps) each",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="time-to-quality-") as scratch:
        work_dir = args.work_dir or Path(scratch)
        work_dir.mkdir(parents=True, exist_ok=True)
        results, scorer, (bare, parts) = run(args, work_dir)
    print_report(results, scorer.real_fid, scorer.real_is, scorer.summary["test_accuracy"])
    print_overhead(results[0].run, bare, args.batch_size, parts, args.marks)


if __name__ == "__main__":
    main()
