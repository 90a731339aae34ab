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

import torch
from common import CONFIG_DIR, CPU, cell_spec, median_seconds, study_config

from ddpm.runtime import autocast_context
from ddpm.unet import UNet

# The configs these U-Nets stand for and the image size each studies.
MODELS = {"digits-8": ((), 8), "mnist5k-28": ((CONFIG_DIR / "mnist5k.yaml",), 28)}


def _run(name: str, channels_last: bool):
    """(U-Net, diffusion) of the study's cosine cell at T = 800 for model ``name``."""
    overlays, image_size = MODELS[name]
    config = study_config(*overlays)
    spec = cell_spec(config, config["datasets"][0], "cosine", 800, 0, (1, image_size, image_size))
    diffusion, unet_config, _ = spec.build()
    torch.manual_seed(0)
    model = UNet(unet_config)
    return (model.to(memory_format=torch.channels_last) if channels_last else model), diffusion


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def training_step_ms(name, channels_last, precision, batch_size, repeats, warmup) -> float:
    model, diffusion = _run(name, channels_last)
    size = MODELS[name][1]
    x0 = _layout(torch.randn(batch_size, 1, size, size), channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

    def step():
        with autocast_context(CPU, precision):
            loss = diffusion.training_loss(model, x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return 1000 * median_seconds(step, warmup, repeats)


def sampling_step_ms(name, channels_last, precision, batch_size, repeats, warmup) -> float:
    model = _run(name, channels_last)[0].eval()
    size = MODELS[name][1]
    x = torch.randn(batch_size, 1, size, size)
    t = torch.full((batch_size,), 400)

    def step():
        with torch.inference_mode(), autocast_context(CPU, precision):
            model(_layout(x, channels_last), t)

    return 1000 * median_seconds(step, warmup, repeats)


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
