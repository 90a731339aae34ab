"""Time to quality: our training loop and U-Net next to diffusers' and lucidrains', in one process.

Every system trains on the same data (the embedded mnist5k digits through
``ddpm.data.prepare_dataset``), with the same linear schedule and T, batch size, optimiser
settings (Adam, learning-rate warm-up, gradient clipping, EMA: the library's, for every
system), float32 and one thread, for the same wall-clock time; each samples the same number of
images by ancestral sampling over all T steps (x_0 clipped, variance beta tilde) under
``torch.inference_mode``, and the samples are scored as the mnist5k study scores them
(``config/mnist5k.yaml``: its domain classifier and scoring options), whose U-Net ours is.

Quality is measured at ``--marks`` evenly spaced moments of the budget (the EMA weights then),
so the table also says when each system first reached the FID the faster peer (the one with the
higher training throughput) ends with. Throughput leaves out the first steps (warm-up).

Usage::

    python benchmarks/time_to_quality.py   # about 8 min on a busy 2-core machine
    python benchmarks/time_to_quality.py --budget 20 --samples 128 --marks 2 --classifier-epochs 5
"""

from __future__ import annotations

import argparse
import copy
import csv
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import CONFIG_DIR, Scorer, cell_spec, describe_cpu, load_data, study_config
from loop_overhead import bare_loop_run, print_overhead, step_parts_ms
from peers import (
    WARMUP_STEPS,
    Snapshot,
    TrainingRun,
    diffusers_system,
    lucidrains_betas,
    lucidrains_system,
    train_peer,
)
from ttq_report import Evaluation, SystemResult, print_report

from ddpm.checkpoints import list_checkpoints
from ddpm.diffusion import from_model_range
from ddpm.spec import RunSpec
from ddpm.training.loop import train
from ddpm.unet import UNet, count_parameters

DATASET = "mnist5k"
#: The study that this benchmark's U-Net, scoring and other training settings come from.
CONFIG = CONFIG_DIR / "mnist5k.yaml"
#: lucidrains' "linear" schedule, fixed in its code: Ho et al.'s betas rescaled by 1000/T.
LUCIDRAINS_LINEAR = {
    "beta_schedule": "linear",
    "params": {"beta_start": 1e-4, "beta_end": 0.02, "rescale_to_T": True},
}
#: The budget, not a number of steps, ends the peers' runs.
UNBOUNDED_STEPS = 2**62


def _sample_in_batches(draw, n: int, batch: int) -> torch.Tensor:
    return torch.cat([draw(min(batch, n - start)) for start in range(0, n, batch)])


def _peer_sampler(system):
    def sample(state: dict, n: int, batch: int) -> torch.Tensor:
        module = copy.deepcopy(system.module)
        module.load_state_dict(state)
        module.eval()
        return _sample_in_batches(lambda k: system.sample(module, k), n, batch)

    return sample


def _ours_sampler(spec: RunSpec):
    diffusion, unet_config, _ = spec.build()

    def sample(state: dict, n: int, batch: int) -> torch.Tensor:
        model = UNet(unet_config)
        model.load_state_dict(state)
        model.eval()
        generator = torch.Generator().manual_seed(spec.seed)
        size = (unet_config.image_channels, unet_config.image_size, unet_config.image_size)
        return _sample_in_batches(
            lambda k: diffusion.sample(model, (k, *size), generator=generator), n, batch
        )

    return sample


def _log_rows(run_dir: Path) -> list[tuple[int, float, float]]:
    """(step, mean loss, elapsed seconds) of every row of ``train_log.csv``."""
    with open(run_dir / "train_log.csv", newline="") as handle:
        return [
            (int(row["step"]), float(row["loss"]), float(row["seconds"]))
            for row in csv.DictReader(handle)
        ]


def _with_training(spec: RunSpec, **settings) -> RunSpec:
    return replace(spec, training=replace(spec.training, **settings))


def seconds_per_step_of_ours(images, spec: RunSpec, work_dir: Path) -> float:
    """Steady-state seconds per step of ``train`` (a short run, one log row per step)."""
    steps = WARMUP_STEPS + 20
    run_dir = Path(tempfile.mkdtemp(prefix="calibration-", dir=work_dir))
    train(images, _with_training(spec, steps=steps, log_every=1, checkpoint_every=steps), run_dir)
    rows = _log_rows(run_dir)[WARMUP_STEPS:]
    return (rows[-1][2] - rows[0][2]) / (rows[-1][0] - rows[0][0])


def _train_chunk(images, spec: RunSpec, steps: int, marks: int, run_dir: Path):
    """``train`` up to ``steps`` in ``run_dir``, resuming from its last checkpoint there; return
    the wall and CPU seconds it took and the checkpoint it wrote at ``steps``."""
    chunk = _with_training(
        spec,
        steps=steps,
        log_every=WARMUP_STEPS,
        checkpoint_every=steps,  # one checkpoint, at the end of the chunk
        keep_checkpoints=marks,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    train(images, chunk, run_dir)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    path = dict(list_checkpoints(run_dir / "checkpoints"))[steps]
    return wall, cpu, torch.load(path, map_location="cpu", weights_only=True)


def train_ours(images, spec: RunSpec, budget_seconds: float, marks: int, work_dir: Path):
    """``ddpm.training.loop.train`` for about ``budget_seconds``, with a snapshot at each mark.

    One call of ``train`` per mark, each resuming the run from the previous one's checkpoint
    (which gives the same weights as one uninterrupted run); each chunk's number of steps comes
    from the speed measured so far, so that a machine that slows down or speeds up during the
    run moves the end of the budget by a fraction of one chunk only. Every call's start-up and
    final writes count as training time.
    """
    seconds_per_step = seconds_per_step_of_ours(images, spec, work_dir)
    run_dir = Path(tempfile.mkdtemp(prefix="ours-", dir=work_dir))
    snapshots, elapsed, cpu, steps = [], 0.0, 0.0, 0
    for mark in range(marks):
        chunk = max(1, round((budget_seconds - elapsed) / (marks - mark) / seconds_per_step))
        steps += chunk
        wall, chunk_cpu, state = _train_chunk(images, spec, steps, marks, run_dir)
        elapsed, cpu, seconds_per_step = elapsed + wall, cpu + chunk_cpu, wall / chunk
        snapshots.append(Snapshot(elapsed, steps, state["ema_model"]))
    rows = _log_rows(run_dir)
    if len(rows) < 2:
        raise RuntimeError("our run was too short to measure its throughput; raise --budget")
    # Rows are WARMUP_STEPS apart; the time up to the first one (start-up, warm-up) is left out.
    rate = (rows[-1][0] - rows[0][0]) * spec.training.batch_size / (rows[-1][2] - rows[0][2])
    return TrainingRun(
        name="ours",
        parameters=count_parameters(UNet(spec.unet)),
        steps=steps,
        seconds=elapsed,
        images_per_second=rate,
        first_loss=rows[0][1],
        last_loss=rows[-1][1],
        snapshots=snapshots,
        last_checkpoint=state,
        cpu_share=cpu / elapsed,
    )


def evaluate(run: TrainingRun, sampler, scorer: Scorer, args) -> SystemResult:
    """Sample and score every snapshot of ``run``; time the sampling."""
    evaluations = []
    for snapshot in run.snapshots:
        torch.manual_seed(args.seed)  # the peers draw their sampling noise from the global RNG
        started, cpu_started = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            images = sampler(snapshot.ema_state, args.samples, args.sample_batch)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        metrics = scorer(from_model_range(images))
        evaluations.append(
            Evaluation(
                seconds=snapshot.seconds,
                steps=snapshot.steps,
                fid=metrics["classifier_fid"],
                inception_score=metrics["classifier_is_mean"],
                sample_ms=1000.0 * seconds / (args.samples * args.T),
                sample_cpu_ms=1000.0 * cpu_seconds / (args.samples * args.T),
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
    add("--classifier-epochs", type=int, default=None, help="default: the study's")
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
    return args


def ours_spec(args) -> RunSpec:
    """Our run: the mnist5k study's U-Net (at ``--base-channels``) and training settings, with
    lucidrains' linear schedule and the peers' sampler variance, beta tilde."""
    config = study_config(CONFIG)
    config["schedules"] = {"linear": LUCIDRAINS_LINEAR}
    config["diffusion"]["variance"] = "beta_tilde"
    config["model"]["base_channels"] = args.base_channels
    spec = cell_spec(
        config,
        DATASET,
        "linear",
        args.T,
        args.seed,
        (1, args.image_size, args.image_size),
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        lr_decay="none",  # a learning rate that does not depend on a number of steps
        grad_clip=args.grad_clip,
        ema_decay=args.ema_decay,
    )
    if not np.allclose(spec.schedule.build().betas, lucidrains_betas(args.T), rtol=1e-6, atol=0):
        raise RuntimeError("our linear betas differ from lucidrains'; the comparison is unfair")
    return spec


def run(args, work_dir: Path) -> tuple[list[SystemResult], Scorer, tuple[TrainingRun, dict]]:
    """Train, sample and score every system; also our loop against the bare one."""
    config = study_config(CONFIG)
    data = load_data(config, DATASET, work_dir, args.image_size)
    scorer = Scorer(config, data, args.samples, work_dir, args.classifier_epochs)
    spec = ours_spec(args)
    ours = train_ours(data.train_images, spec, args.budget, args.marks, work_dir)
    print(f"trained ours; load average {os.getloadavg()[0]:.2f}", flush=True)
    peer_training = replace(spec.training, steps=UNBOUNDED_STEPS)
    overhead = (
        bare_loop_run(data.train_images, spec, peer_training, max(2.0, args.budget / 6)),
        step_parts_ms(data.train_images, spec, ours.last_checkpoint),
    )
    results = [evaluate(ours, _ours_sampler(spec), scorer, args)]
    moments = [snapshot.seconds for snapshot in ours.snapshots]
    for build in (
        lambda: diffusers_system(
            spec.schedule.build().betas, args.image_size, args.base_channels, 0.0
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
            peer_training,
            moments,
            count_parameters(system.network),
        )
        print(f"trained {system.name}; load average {os.getloadavg()[0]:.2f}", flush=True)
        results.append(evaluate(trained, _peer_sampler(system), scorer, args))
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
    floor = scorer.floor
    print_report(
        results, floor["classifier_fid"], floor["classifier_is_mean"], scorer.test_accuracy
    )
    print_overhead(results[0].run, bare, args.batch_size, parts, args.marks)


if __name__ == "__main__":
    main()
