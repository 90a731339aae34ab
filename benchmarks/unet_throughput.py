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
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from peers import DiffusersUNet, lucidrains_unet

from ddpm.unet import UNet, count_parameters
from ddpm.unet_config import UNetConfig


def ours(
    base_channels: int, image_size: int
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    config = UNetConfig(
        image_channels=1,
        image_size=image_size,
        base_channels=base_channels,
        channel_mults=(1, 2, 2),
        num_res_blocks=1,
        attention_levels=(2,),  # image_size // 4 with three levels
        dropout=0.1,
        num_groups=8,
    )
    return UNet(config)


def lucidrains(image_size: int) -> torch.nn.Module:
    return lucidrains_unet(base_channels=32)


MODELS: dict[str, Callable[[int], torch.nn.Module]] = {
    "ours-16": lambda size: ours(16, size),
    "ours-24": lambda size: ours(24, size),
    "ours-32": lambda size: ours(32, size),
    "diffusers": DiffusersUNet,
    "lucidrains": lucidrains,
}


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def time_training(model, batch_size, image_size, precision, warmup, repeats) -> float:
    """Median images per second of a training step."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 1, image_size, image_size, generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    t = torch.randint(1, 1001, (batch_size,), generator=generator)
    seconds = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        with autocast(precision):
            prediction = model(x, t)
        loss = F.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return batch_size / statistics.median(seconds)


@torch.no_grad()
def time_sampling(model, batch_size, image_size, precision, warmup, repeats) -> float:
    """Median milliseconds per image per denoising step (one forward of the batch)."""
    model.eval()
    x = torch.randn(batch_size, 1, image_size, image_size)
    t = torch.full((batch_size,), 500, dtype=torch.long)
    seconds = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        with autocast(precision):
            model(x, t).float()
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(seconds) / batch_size


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
            train_rate = time_training(
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
