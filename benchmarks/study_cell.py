"""Cost and quality of one grid cell of the study, to size the default config.

Trains one cell of the study in ``config/config.yaml`` (every option below defaults to the
study's value), samples it as the study samples and scores it as the study scores (the domain
classifier against the test split), next to the real floor at the same n. Training runs on the
CPU in float32 on one thread, without the EMA sample snapshots. Prints one JSON line: the run
spec, seconds of training and sampling, images per second, IS, FID, KID, whether the cell
meets the study's quality bars (``ddpm.verdicts.QUALITY_BARS``) and the whole study projected
onto the AVX2 machine.

Example (one thread; on an AVX-512 machine the AVX2 kernels can be forced with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``):

    OMP_NUM_THREADS=1 python benchmarks/study_cell.py --schedule cosine --T 800 --steps 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import Scorer, add_training_arguments, arguments_spec, load_data, study_config

from ddpm.sampling import generate
from ddpm.training.loop import train
from ddpm.verdicts import QUALITY_BARS

JOB_OVERHEAD_S = 4.0  # CPU seconds to start one job's Python with torch (measured: 3.1)
FIXED_S = 300.0  # forward-process analysis and thesis figures, classifier, floor, report


def _ints(text: str) -> tuple[int, ...]:
    return () if text == "none" else tuple(int(v) for v in text.split(","))


def _projection(args, grid, train_cpu: float, sample_cpu: float) -> dict:
    """The whole study on the AVX2 machine, 2 single-threaded jobs at a time."""
    runs = len(grid["schedules"]) * len(grid["T"]) * args.seeds
    train_s = runs * train_cpu * args.train_factor
    per_img_step = sample_cpu / (args.num_samples * args.T) * args.sample_factor
    sample = len(grid["schedules"]) * sum(grid["T"]) * args.seeds * args.num_samples * per_img_step
    score = runs * 4.0  # metrics + 100 bootstrap replicates, measured 2-4 CPU s
    overhead = 3 * runs * JOB_OVERHEAD_S + FIXED_S
    total = train_s + sample + score + overhead
    return {
        "projected_train_s": round(train_s),
        "projected_sample_s": round(sample),
        "projected_total_core_s": round(total),
        "projected_wall_min_2_cores": round(total / 2 / 60, 1),
    }


def _arguments(config: dict, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=config["datasets"][0])
    parser.add_argument("--image-size", type=int, help="default: the study's for the dataset")
    parser.add_argument(
        "--schedule", choices=sorted(config["schedules"]), help="default: the grid's first"
    )
    parser.add_argument("--T", type=int, default=200)
    model = parser.add_argument_group("U-Net (default: the study's)")
    model.add_argument("--base-channels", type=int)
    model.add_argument("--channel-mults", type=_ints, help="e.g. 1,2")
    model.add_argument(
        "--attention", type=_ints, help="levels with attention (0 = full size), none"
    )
    model.add_argument("--num-res-blocks", type=int)
    add_training_arguments(parser)
    parser.add_argument("--num-samples", type=int, default=config["sampling"]["num_samples"])
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
        "--seeds",
        type=int,
        default=len(config["grid"]["seeds"]),
        help="seeds per cell, for the projection",
    )
    parser.add_argument("--classifier-epochs", type=int, help="default: the study's")
    args = parser.parse_args(argv)
    args.schedule = args.schedule or config["grid"]["schedules"][0]
    return args


def main(argv=None) -> None:
    config = study_config()
    args = _arguments(config, argv)
    model = {
        "base_channels": args.base_channels,
        "channel_mults": args.channel_mults,
        "attention_levels": args.attention,
        "num_res_blocks": args.num_res_blocks,
    }
    config["model"].update({key: value for key, value in model.items() if value is not None})
    torch.set_num_threads(1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="study_cell_"))
    data = load_data(config, args.dataset, work, args.image_size)
    spec = arguments_spec(args, config, args.dataset, data.image_shape)
    scorer = Scorer(config, data, args.num_samples, work, args.classifier_epochs)
    run_dir = work / f"run-{time.time_ns()}"
    # CPU seconds of this (single-threaded) process: on a shared machine, wall time also counts
    # the time other processes held the core.
    started, cpu_started = time.perf_counter(), time.process_time()
    model_path = train(data.train_images, spec, run_dir)
    train_s, train_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    started, cpu_started = time.perf_counter(), time.process_time()
    sampling = {**config["sampling"], "num_samples": args.num_samples, "precision": "fp32"}
    samples = generate(model_path, **sampling, seed=args.seed, device="cpu")
    sample_s, sample_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    generated, floor = scorer(samples), scorer.floor
    torch.save(samples, run_dir / "samples.pt")
    images = spec.training.steps * spec.training.batch_size
    result = {
        "args": vars(args),
        "spec": spec.to_dict(),
        "train_s": round(train_s, 1),
        "train_cpu_s": round(train_cpu, 1),
        "train_img_per_cpu_s": round(images / train_cpu, 1),
        "sample_s": round(sample_s, 1),
        "sample_cpu_s": round(sample_cpu, 1),
        "sample_cpu_ms_per_img_step": round(1000 * sample_cpu / (args.num_samples * args.T), 4),
        "is": generated["classifier_is_mean"],
        "fid": generated["classifier_fid"],
        "kid": generated["classifier_kid_mean"],
        "floor_fid": floor["classifier_fid"],
        "floor_is": floor["classifier_is_mean"],
        "run_dir": str(run_dir),
        **_projection(args, config["grid"], train_cpu, sample_cpu),
    }
    result["passes_is"] = result["is"] >= QUALITY_BARS["is_fraction_of_real"] * result["floor_is"]
    result["passes_fid"] = (
        result["fid"] <= QUALITY_BARS["fid_multiple_of_floor"] * result["floor_fid"]
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
