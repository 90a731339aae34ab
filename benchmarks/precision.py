"""fp32 against bf16 autocast for the default U-Net on this CPU, and what precision "auto" picks.

For the ``model`` block of a config (default ``config/config.yaml``) at 28 x 28, batch 64,
on random data, it prints:

- training: images per second of a full step (forward, MSE to the noise, backward, Adam);
- sampling: milliseconds per image per denoising step (one forward of the batch), under
  ``torch.inference_mode()`` (what sampling uses) and under ``torch.no_grad()``;
- what ``ddpm.runtime.choose_precision("auto", ...)`` picks for training and for sampling,
  and why, with the CPU's name and whether it runs bf16 natively.

Each figure is the median of the timed repetitions after a warm-up; on a shared machine expect
15-25 % spread between runs. To see what a CPU without native bf16 does, cap torch at AVX2:

    python benchmarks/precision.py
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/precision.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import (
    CONFIG_DIR,
    CPU,
    describe_cpu,
    study_config,
    training_images_per_second,
)

from ddpm import runtime
from ddpm.unet import UNet, count_parameters
from ddpm.unet_config import unet_config_for


def sampling_ms_per_image_step(model, batch: int, precision: str, args) -> dict[str, float]:
    """ms per image per step under each grad mode, the two timed in turn so that a change in
    the machine's load affects both alike."""
    model.eval()
    eps_model = runtime.noise_predictor(model, CPU, precision, channels_last=False)
    size = model.config.image_size
    x, t = torch.randn(batch, 1, size, size), torch.full((batch,), 500)
    modes = {"inference_mode": torch.inference_mode, "no_grad": torch.no_grad}
    timings = {name: [] for name in modes}
    for repetition in range(args.warmup + args.repeats):
        for name, mode in modes.items():
            started = time.perf_counter()
            with mode():
                eps_model(x, t)
            if repetition >= args.warmup:
                timings[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(times) / batch for name, times in timings.items()}


def auto_choices(model, batch: int) -> dict[str, runtime.PrecisionChoice]:
    size = model.config.image_size
    example = (torch.randn(batch, 1, size, size), torch.randint(1, 1000, (batch,)))
    choices = {}
    for mode, train_mode in (("training", True), ("sampling", False)):
        model.train(train_mode)
        choices[mode] = runtime.choose_precision("auto", CPU, model, example)
    return choices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config",
        type=Path,
        default=CONFIG_DIR / "config.yaml",
        help="its model block; an overlay is merged onto config/config.yaml, as in the workflow",
    )
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    block = study_config(args.config)["model"]
    model = UNet(unet_config_for(block, 1, args.image_size))
    print(f"CPU: {describe_cpu()}; {args.threads} thread(s)")
    print(f"oneDNN bf16 kernels: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print(
        f"model: {args.config} model block, {count_parameters(model):,} parameters, "
        f"{args.image_size}x{args.image_size}, batch {args.batch}"
    )
    for precision in ("fp32", "bf16"):
        train_rate = training_images_per_second(
            model, args.batch, args.image_size, precision, args.warmup, args.repeats
        )
        sampling = sampling_ms_per_image_step(model, args.batch, precision, args)
        print(
            f"{precision}: training {train_rate:.1f} img/s; sampling "
            + ", ".join(f"{ms:.2f} ms/img/step ({name})" for name, ms in sampling.items())
        )
    for mode, choice in auto_choices(model, args.batch).items():
        print(f"auto for {mode}: {choice.precision} - {choice.reason}")


if __name__ == "__main__":
    main()
