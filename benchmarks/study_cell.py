"""Cost and quality of one grid cell of the study, to size the default config.

Trains one cell, samples it with the ancestral sampler (T steps) and scores it with the domain
classifier against the test set, next to the real-vs-real floor at the same n. Prints one JSON
line: seconds of training and sampling, images per second, IS, FID, KID and the bars of the
study (IS >= 0.8 x real IS, FID <= 3 x floor).

Example (one thread, fp32; on an AVX-512 machine the AVX2 kernels can be forced with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``):

    OMP_NUM_THREADS=1 python benchmarks/study_cell.py --dataset mnist5k --image-size 16 \
        --base-channels 16 --channel-mults 1,2 --attention none --steps 1000 --T 200
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch

import ddpm.training.loop
from ddpm.data.prepare import prepare_dataset
from ddpm.data.store import load_split
from ddpm.diffusion import GaussianDiffusion
from ddpm.evaluation.classifier import train_classifier
from ddpm.evaluation.floor import real_floor
from ddpm.evaluation.scoring import compute_metrics
from ddpm.sampling import generate
from ddpm.schedules import make_schedule
from ddpm.training.config import TrainingConfig
from ddpm.training.loop import train
from ddpm.unet_config import UNetConfig
from ddpm.workflow.config_load import load_config_file, merge_config

SCHEDULES = {
    "linear": ("linear", {"beta_start": 1e-5, "beta_end": 0.01, "rescale_to_T": True}),
    "cosine": ("cosine", {"s": 0.002, "beta_min": 1e-5, "beta_max": 0.9999}),
    "sigmoid": (
        "sigmoid",
        {"beta_start": 1e-5, "beta_end": 0.01, "rescale_to_T": True, "add_start": True},
    ),
}


CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def study_config(overlay: str | None = None) -> dict:
    """The default study's config (config/config.yaml), with ``config/<overlay>`` merged on."""
    config = load_config_file(CONFIG_DIR / "config.yaml")
    return merge_config(config, load_config_file(CONFIG_DIR / overlay)) if overlay else config


def study_classifier_epochs() -> int:
    """The default study's classifier epochs: cells are scored as the study scores them."""
    return int(study_config()["scoring"]["classifier"]["epochs"])


def _ints(text: str) -> tuple[int, ...]:
    return () if text == "none" else tuple(int(v) for v in text.split(","))


GRID_T = (50, 100, 200, 400, 800)
GRID_SCHEDULES = 3
JOB_OVERHEAD_S = 4.0  # CPU seconds to start one job's Python with torch (measured: 3.1)
FIXED_S = 300.0  # forward-process analysis and thesis figures, classifier, floor, report


def _projection(args, train_cpu: float, sample_cpu: float) -> dict:
    """The whole default study on the AVX2 machine, 2 single-threaded jobs at a time."""
    runs = GRID_SCHEDULES * len(GRID_T) * args.seeds
    train = runs * train_cpu * args.train_factor
    per_img_step = sample_cpu / (args.num_samples * args.T) * args.sample_factor
    sample = GRID_SCHEDULES * sum(GRID_T) * args.seeds * args.num_samples * per_img_step
    score = runs * 4.0  # metrics + 100 bootstrap replicates, measured 2-4 CPU s
    overhead = 3 * runs * JOB_OVERHEAD_S + FIXED_S
    total = train + sample + score + overhead
    return {
        "projected_train_s": round(train),
        "projected_sample_s": round(sample),
        "projected_total_core_s": round(total),
        "projected_wall_min_2_cores": round(total / 2 / 60, 1),
    }


def _cosine_learning_rate(config, step: int) -> float:
    """Linear warm-up, then cosine decay from the learning rate to 0 at the last step."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.learning_rate * step / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--schedule", default="linear", choices=sorted(SCHEDULES))
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--channel-mults", type=_ints, default=(1, 2))
    parser.add_argument(
        "--attention", type=_ints, default=(), help="levels with attention (0 = full resolution)"
    )
    parser.add_argument("--num-res-blocks", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup-steps", type=int, default=50)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--train-factor",
        type=float,
        default=1.84,
        help="AVX2 machine's training time / this machine's (docs: 95.7 vs 176 img/s measured here)",
    )
    parser.add_argument(
        "--sample-factor",
        type=float,
        default=0.95,
        help="AVX2 machine's sampling time / this machine's (2.78 vs 2.92 ms/img/step here)",
    )
    parser.add_argument(
        "--lr-decay",
        choices=["constant", "cosine"],
        default="constant",
        help="after warm-up: constant (the library's) or cosine decay to 0 (an experiment: "
        "patches the training module's learning-rate function for this process only)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell, for the projection")
    parser.add_argument(
        "--classifier-epochs", type=int, default=None, help="default: the study's (config.yaml)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.lr_decay == "cosine":
        # The loop calls the learning_rate it imported from ddpm.training.state.
        ddpm.training.loop.learning_rate = _cosine_learning_rate
    work = Path(args.workdir or tempfile.mkdtemp(prefix="study_cell_"))
    data = work / f"{args.dataset}-{args.image_size}.npz"
    if not data.exists():
        prepare_dataset(args.dataset, data, image_size=args.image_size)
    train_images, train_labels = load_split(data, "train")
    test_images, test_labels = load_split(data, "test")
    epochs = args.classifier_epochs or study_classifier_epochs()
    classifier = work / f"classifier-{args.dataset}-{args.image_size}-e{epochs}.pt"
    if not classifier.exists():
        train_classifier(
            train_images, train_labels, test_images, test_labels, classifier, epochs=epochs
        )
    name, params = SCHEDULES[args.schedule]
    diffusion = GaussianDiffusion(make_schedule(name, args.T, **params))
    unet = UNetConfig(
        image_channels=train_images.shape[1],
        image_size=args.image_size,
        base_channels=args.base_channels,
        channel_mults=args.channel_mults,
        num_res_blocks=args.num_res_blocks,
        attention_levels=args.attention,
        dropout=0.0,
    )
    config = TrainingConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay,
        checkpoint_every=args.steps,
        log_every=max(1, args.steps // 10),
        seed=args.seed,
        device="cpu",
        precision="fp32",
        num_threads=1,
    )
    run_dir = work / f"run-{time.time_ns()}"
    # CPU seconds of this (single-threaded) process: on a shared machine, wall time also counts
    # the time other processes held the core.
    started, cpu_started = time.perf_counter(), time.process_time()
    model_path = train(train_images, diffusion, unet, config, run_dir)
    train_s, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    started, cpu_started = time.perf_counter(), time.process_time()
    samples = generate(
        model_path,
        args.num_samples,
        batch_size=args.num_samples,
        seed=args.seed,
        device="cpu",
        precision="fp32",
    )
    sample_s, sample_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    options = {
        "extractor": "classifier",
        "weights_path": classifier,
        "kid_subset_size": min(50, args.num_samples),
        "isc_splits": 5,
    }
    generated = compute_metrics(samples, test_images, **options)
    floor = real_floor(train_images, test_images, args.num_samples, **options)
    torch.save(samples, run_dir / "samples.pt")
    result = {
        "args": vars(args),
        "train_s": round(train_s, 1),
        "train_cpu_s": round(train_cpu, 1),
        "train_img_per_cpu_s": round(args.steps * args.batch_size / train_cpu, 1),
        "sample_s": round(sample_s, 1),
        "sample_cpu_s": round(sample_cpu, 1),
        "sample_cpu_ms_per_img_step": round(1000 * sample_cpu / (args.num_samples * args.T), 4),
        "is": generated["classifier_is_mean"],
        "fid": generated["classifier_fid"],
        "kid": generated["classifier_kid_mean"],
        "floor_fid": floor["classifier_fid"],
        "floor_is": floor["classifier_is_mean"],
        "run_dir": str(run_dir),
    }
    result.update(_projection(args, train_cpu, sample_cpu))
    result["passes_is"] = result["is"] >= 0.8 * result["floor_is"]
    result["passes_fid"] = result["fid"] <= 3 * result["floor_fid"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
