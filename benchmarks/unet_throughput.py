"""Training and sampling throughput of our U-Net next to diffusers' and lucidrains' U-Nets.

For each model and precision (float32, bf16 autocast) it measures, on random data:

- training: images per second of a full step (forward, L_simple-style MSE, backward, Adam);
- sampling: milliseconds per image per denoising step (one no-grad forward of a batch),
  which times T gives the cost of ancestral sampling per image.

Each figure is the median over timed repetitions after warm-up. The machine may be shared,
so expect 15-25 % spread between runs.

Usage::

    python benchmarks/unet_throughput.py --threads 2
    python benchmarks/unet_throughput.py --models ours-32 diffusers --precisions fp32
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from common import (
    CONFIG_DIR,
    CPU,
    median_seconds,
    study_config,
    training_images_per_second,
)
from peers import DiffusersUNet, lucidrains_unet

from ddpm.runtime import autocast_context
from ddpm.unet import UNet, count_parameters
from ddpm.unet_config import unet_config_for


def ours(base_channels: int, image_size: int) -> UNet:
    """The mnist5k study's U-Net (``config/mnist5k.yaml``), ``base_channels`` wide."""
    block = {**study_config(CONFIG_DIR / "mnist5k.yaml")["model"], "base_channels": base_channels}
    return UNet(unet_config_for(block, 1, image_size))


def lucidrains(image_size: int) -> torch.nn.Module:
    return lucidrains_unet(base_channels=32)


MODELS: dict[str, Callable[[int], torch.nn.Module]] = {
    "ours-16": lambda size: ours(16, size),
    "ours-24": lambda size: ours(24, size),
    "ours-32": lambda size: ours(32, size),
    "diffusers": DiffusersUNet,
    "lucidrains": lucidrains,
}


@torch.no_grad()
def time_sampling(model, batch_size, image_size, precision, warmup, repeats) -> float:
    """Median milliseconds per image per denoising step (one forward of the batch)."""
    model.eval()
    x = torch.randn(batch_size, 1, image_size, image_size)
    t = torch.full((batch_size,), 500, dtype=torch.long)

    def step():
        with autocast_context(CPU, precision):
            model(x, t).float()

    return 1000.0 * median_seconds(step, warmup, repeats) / batch_size


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models to time"
    )
    parser.add_argument(
        "--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"]
    )
    parser.add_argument("--batch-size", type=int, default=128, help="images per step / forward")
    parser.add_argument("--image-size", type=int, default=28, help="side of the (1-channel) images")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repetitions first")
    parser.add_argument("--train-repeats", type=int, default=5, help="timed training steps")
    parser.add_argument("--sample-repeats", type=int, default=5, help="timed sampling forwards")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, "
        f"{args.image_size}x{args.image_size}x1"
    )
    header = f"{'model':<12} {'params':>9} {'precision':>9} {'train img/s':>12} {'sample ms/img/step':>19}"
    print(header)
    print("-" * len(header))
    for name in args.models:
        torch.manual_seed(0)
        model = MODELS[name](args.image_size)
        for precision in args.precisions:
            train_rate = training_images_per_second(
                model, args.batch_size, args.image_size, precision, args.warmup, args.train_repeats
            )
            sample_ms = time_sampling(
                model, args.batch_size, args.image_size, precision, args.warmup, args.sample_repeats
            )
            print(
                f"{name:<12} {count_parameters(model):>9,} {precision:>9} {train_rate:>12.1f} {sample_ms:>19.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
