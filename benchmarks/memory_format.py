"""Training and sampling steps of the U-Net in the default memory format and in channels_last.

On a CPU, oneDNN reorders every activation between PyTorch's NCHW layout and its own blocked one
around each convolution; in channels_last (NHWC) it does not. Whether that pays depends on the
kernels (AVX2 or AVX-512) and the precision, so :func:`ddpm.runtime.use_channels_last` decides it
from those, and this script measures what that decision rests on: the median milliseconds of a
training step (forward, L_simple, backward, fused Adam) and of a sampling step (one forward pass
under inference mode) of the default study's 8 x 8 U-Net and of the 28 x 28 one of
``config/mnist5k.yaml``, in float32 and, where asked, under bf16 autocast.

Usage (one thread; on an AVX-512 CPU the AVX2 kernels can be forced with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``)::

    OMP_NUM_THREADS=1 python benchmarks/memory_format.py
    OMP_NUM_THREADS=1 python benchmarks/memory_format.py --precisions fp32 bf16 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from study_cell import study_config
from unet_throughput import autocast

from ddpm.diffusion import GaussianDiffusion
from ddpm.schedules import make_schedule
from ddpm.unet import UNet
from ddpm.unet_config import unet_config_for

# The model blocks of the configs these U-Nets stand for, at the image size each studies.
MODELS = {"digits-8": (None, 8), "mnist5k-28": ("mnist5k.yaml", 28)}


def _model(name: str, channels_last: bool) -> UNet:
    overlay, image_size = MODELS[name]
    torch.manual_seed(0)
    model = UNet(unet_config_for(study_config(overlay)["model"], 1, image_size))
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _median_ms(step, repeats: int, warmup: int) -> float:
    times = []
    for index in range(warmup + repeats):
        started = time.perf_counter()
        step()
        if index >= warmup:
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def training_step_ms(name, channels_last, precision, batch_size, repeats, warmup) -> float:
    model = _model(name, channels_last)
    size = MODELS[name][1]
    x0 = _layout(torch.randn(batch_size, 1, size, size), channels_last)
    diffusion = GaussianDiffusion(make_schedule("cosine", 800, s=0.002, beta_max=0.9999))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

    def step():
        with autocast(precision):
            loss = diffusion.training_loss(model, x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _median_ms(step, repeats, warmup)


def sampling_step_ms(name, channels_last, precision, batch_size, repeats, warmup) -> float:
    model = _model(name, channels_last).eval()
    size = MODELS[name][1]
    x = torch.randn(batch_size, 1, size, size)
    t = torch.full((batch_size,), 400)

    def step():
        with torch.inference_mode(), autocast(precision):
            model(_layout(x, channels_last), t)

    return _median_ms(step, repeats, warmup)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32"])
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--sample-batch", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="measurements per cell")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability()}, 1 thread; "
        f"training batch {args.train_batch}, sampling batch {args.sample_batch}; median ms"
    )
    print(
        f"{'model':12s} {'precision':9s} {'step':8s} {'NCHW':>8s} {'NHWC':>8s} {'NHWC/NCHW':>10s}"
    )
    for name in args.models:
        # The 28 x 28 model is ten times slower: fewer steps keep the run short.
        steps = args.steps if MODELS[name][1] <= 8 else max(3, args.steps // 4)
        for precision in args.precisions:
            for kind, measure, batch in (
                ("train", training_step_ms, args.train_batch),
                ("sample", sampling_step_ms, args.sample_batch),
            ):
                for _ in range(args.repeats):
                    nchw, nhwc = (
                        measure(name, layout, precision, batch, steps, warmup=3)
                        for layout in (False, True)
                    )
                    print(
                        f"{name:12s} {precision:9s} {kind:8s} {nchw:8.1f} {nhwc:8.1f} "
                        f"{nhwc / nchw:10.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
