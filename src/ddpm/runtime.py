"""Where and how the U-Net runs: device, numeric precision, autocast, memory layout, threads.

Training, sampling and scoring all resolve their device here, and training and sampling
choose their precision here, so a model is run the same way wherever it is used. A plain
``"cuda"`` claims a GPU no other ddpm process holds (:mod:`ddpm.gpu_lock`).

Precision ``"auto"`` is decided by the hardware: bf16 on a GPU that supports it; on a CPU,
bf16 only where the CPU runs it natively *and* a timed pass of the actual model says it is
faster (on a CPU without bf16 instructions autocast emulates it, several times slower).
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import torch

from . import DeviceError
from .gpu_lock import claim_gpu

__all__ = [
    "PRECISIONS",
    "PrecisionChoice",
    "autocast_context",
    "choose_precision",
    "cpu_bf16_support",
    "gpu_request",
    "noise_predictor",
    "resolve_device",
    "resolve_job_device",
    "torch_threads",
    "use_channels_last",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp32")

# bf16 must beat fp32 by this factor in the timed pass: run-to-run noise on a shared machine is
# 15-25 %, and a near-tie is not worth fp32's precision nor a choice that flips between runs.
BF16_MIN_SPEEDUP = 1.1
# The timed pass uses at most this many images of the example batch: enough for the ratio of
# the two precisions, and it keeps the start-up cost near a second for the default U-Net.
TIMING_MAX_IMAGES = 32
TIMING_WARMUP = 1
TIMING_REPEATS = 3
TIMING_BUDGET_S = 0.5  # per precision, after the warm-up; at least one timed pass is made


# --- devices --------------------------------------------------------------------------------
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> a GPU if CUDA is usable, else the CPU.

    ``"cuda"`` takes a GPU no other ddpm process of this user holds (see
    :func:`claim_gpu`); ``"cuda:N"`` pins GPU N. A GPU that cannot be used is
    a :class:`DeviceError` naming the cause.
    """
    if str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        device = "cuda"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(
            f"device {device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from err
    if resolved.type != "cuda":
        return resolved
    count = _usable_gpu_count(str(device))
    if resolved.index is None:
        return torch.device("cuda", claim_gpu(count))
    if resolved.index >= count:
        raise DeviceError(
            f"device {str(device)!r} was requested, but only {count} GPU(s) are visible "
            f"(cuda:0 to cuda:{count - 1}){_visible_devices_note()}; use one of those or 'cuda'"
        )
    return resolved


def gpu_request(resources: Mapping) -> str | None:
    """How a workflow job's resources ask for a GPU (``"gres=gpu:a100:1"``, ``"gpu=1"``), or
    None.

    A profile gives a GPU to a job in one of Snakemake's two forms: the ``gpu`` count (which
    Snakemake's SLURM plugin turns into ``--gpus``, and a workstation counts against
    ``--resources gpu=N``) or a SLURM GRES string naming ``gpu``.
    """
    gres = str(resources.get("gres") or "")
    if any(part.split(":")[0] == "gpu" for part in gres.split(",")):
        return f"gres={gres}"
    count = resources.get("gpu") or 0
    if int(count) > 0:
        return f"gpu={count}"
    return None


def resolve_job_device(device: str, gpu_request: str | None) -> torch.device:
    """The device of a workflow job: ``device`` as configured, ``"auto"`` becoming ``"cuda"``
    for a job its profile gave a GPU (``gpu_request`` says how, e.g. ``"gres=gpu:1"``).

    Such a job that cannot use CUDA raises :class:`DeviceError` naming the request and the
    cause, at its start, instead of running on the CPU of a GPU node for hours.
    """
    chosen = "cuda" if device == "auto" and gpu_request is not None else device
    try:
        resolved = resolve_device(chosen)
    except DeviceError as error:
        if gpu_request is None:
            raise
        raise DeviceError(
            f"this job was given a GPU by its profile ({gpu_request}), but {error}; "
            "or run it without a GPU request (a profile without set-resources for GPUs)"
        ) from error
    if gpu_request is not None and resolved.type != "cuda":
        logger.warning(
            "this job was given a GPU by its profile (%s), but the study's device is %r: it "
            "runs on the CPU and the GPU stays idle",
            gpu_request,
            device,
        )
    return resolved


def _visible_devices_note() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "" if visible is None else f" with CUDA_VISIBLE_DEVICES={visible!r}"


def _usable_gpu_count(requested: str) -> int:
    """How many GPUs torch sees; a :class:`DeviceError` naming the cause when it sees none."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        raise DeviceError(
            f"device {requested!r} was requested, but this PyTorch ({torch.__version__}) is a "
            "CPU build; install a CUDA build in this environment, or use device 'cpu'"
        )
    count = torch.cuda.device_count()
    if count == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hidden = "" if visible is None else f", or CUDA_VISIBLE_DEVICES={visible!r} hides them"
        raise DeviceError(
            f"device {requested!r} was requested, but torch sees no CUDA device: there is no "
            f"GPU or no working NVIDIA driver (check `nvidia-smi`){hidden}; run where a GPU is "
            "visible, or use device 'cpu'"
        )
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {requested!r} was requested and {count} GPU(s) are listed, but CUDA cannot "
            f"start; check that the driver supports CUDA {torch.version.cuda} (`nvidia-smi`)"
        )
    return count


# --- precision ------------------------------------------------------------------------------
class PrecisionChoice(NamedTuple):
    """The precision a run uses, and why (written into the run record)."""

    precision: str
    reason: str


def cpu_bf16_support() -> tuple[bool, str]:
    """(whether this CPU runs bf16 natively, what was found, e.g. ``"AVX512_BF16 + AMX"``).

    ``torch.backends.cpu.get_cpu_capability()`` is the SIMD level ATen's own kernels use
    (``"AVX2"``, ``"AVX512"``...; capped by ``ATEN_CPU_CAPABILITY``); it says nothing about bf16
    ("AVX512" is also reported by CPUs without bf16 instructions).
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` says oneDNN has bf16 kernels here (at least
    AVX-512, natively or by conversion; capped by ``ONEDNN_MAX_CPU_ISA``); where it is False, bf16
    convolutions fall back to slow reference code. ``torch.cpu._is_avx512_bf16_supported()`` and
    ``_is_amx_tile_supported()`` read the instruction set itself. Native = oneDNN bf16 kernels
    and (on x86) bf16 instructions; the timed pass of :func:`choose_precision` has the last word.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False, capability if "512" not in capability else f"{capability}, no oneDNN bf16"
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True, f"{capability}, oneDNN bf16"
    queries = (("AVX512_BF16", "_is_avx512_bf16_supported"), ("AMX", "_is_amx_tile_supported"))
    found = [name for name, query in queries if getattr(torch.cpu, query, lambda: False)()]
    if not found:
        return False, f"{capability} without bf16 instructions"
    return True, " + ".join(found)


def _cuda_has_native_bf16() -> bool:
    return torch.cuda.is_bf16_supported(including_emulation=False)


def _warn_if_emulated(precision: str, device: torch.device) -> str:
    """Warn when an explicit bf16 will be emulated; return a note for the reason ("" if not)."""
    if precision != "bf16":
        return ""
    if device.type == "cpu":
        native, found = cpu_bf16_support()
        note = "" if native else f"this CPU has no native bf16 ({found})"
    elif device.type == "cuda":
        note = "" if _cuda_has_native_bf16() else "this GPU has no native bf16"
    else:
        note = ""
    if note:
        logger.warning(
            "precision 'bf16' was requested, but %s: bf16 is emulated and slow, often several "
            "times slower than fp32; use precision 'auto' or 'fp32'",
            note,
        )
        return f" (emulated: {note})"
    return ""


def choose_precision(
    requested: str,
    device: torch.device,
    model: torch.nn.Module | None = None,
    example_input: tuple[torch.Tensor, ...] | None = None,
    *,
    rounds: int = 1,
    min_speedup: float = BF16_MIN_SPEEDUP,
    own_layouts: bool = False,
    cache: bool = True,
) -> PrecisionChoice:
    """The precision to run ``model`` in on ``device`` for a requested ``"auto"|"bf16"|"fp32"``.

    For ``"auto"`` on a CPU with native bf16, ``model`` is timed on ``example_input`` (the
    arguments of one forward pass) in both precisions, over ``rounds`` interleaved rounds, and
    bf16 is chosen where the median of the rounds' speedups is at least ``min_speedup``. A model in training mode is timed on training steps (forward +
    backward, gradients neither kept nor applied), a model in eval mode on forward passes under
    inference mode, as sampling runs it. With ``own_layouts`` each precision is timed in the
    memory layout it would run in (:func:`use_channels_last`); the model is left in
    contiguous layout. The global RNG state is left as it was, so a run's results do not depend
    on the timing. With ``cache``, decisions are cached per (device, model shape, mode, batch,
    threads) for the life of the process.
    """
    if requested not in PRECISIONS:
        raise DeviceError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    device = torch.device(device)
    if requested != "auto":
        return PrecisionChoice(
            requested, f"{requested} was requested{_warn_if_emulated(requested, device)}"
        )
    if device.type == "cuda":
        if _cuda_has_native_bf16():
            return PrecisionChoice("bf16", "auto: this GPU supports bf16; bf16")
        return PrecisionChoice("fp32", "auto: this GPU has no native bf16; fp32 (TF32)")
    if device.type != "cpu":
        return PrecisionChoice("fp32", f"auto: bf16 is not chosen on {device.type}; fp32")
    native, found = cpu_bf16_support()
    if not native:
        return PrecisionChoice("fp32", f"auto: this CPU has no native bf16 ({found}); fp32")
    if model is None or example_input is None:
        return PrecisionChoice(
            "fp32", f"auto: native bf16 ({found}), but no model to time the two on; fp32"
        )
    timing = (rounds, min_speedup, own_layouts)
    if not cache:
        return _timed_choice(found, device, model, example_input, *timing)
    key = (*_cache_key(device, model, example_input), *timing)
    if key not in _timed_choices:
        _timed_choices[key] = _timed_choice(found, device, model, example_input, *timing)
    return _timed_choices[key]


_timed_choices: dict[tuple, PrecisionChoice] = {}


def _cache_key(device, model, example_input) -> tuple:
    shapes = tuple(tuple(p.shape) for p in model.parameters())
    batch = tuple((tuple(x.shape), x.dtype) for x in example_input)
    return (
        str(device),
        type(model).__name__,
        shapes,
        model.training,
        batch,
        torch.get_num_threads(),
    )


def _timed_choice(
    found: str, device, model, example_input, rounds, min_speedup, own_layouts
) -> PrecisionChoice:
    inputs = tuple(x[:TIMING_MAX_IMAGES] for x in example_input)
    with torch.random.fork_rng(devices=[]):  # dropout in the timed passes must not move the RNG
        timings = _interleaved_timings(model, inputs, device, rounds, own_layouts)
    speedups = sorted(f / b for f, b in zip(timings["fp32"], timings["bf16"], strict=True))
    speedup = statistics.median(speedups)
    seconds = {p: min(values) for p, values in timings.items()}
    pass_name = "training step" if model.training else "forward pass"
    figures = (
        f"fp32 {1000 * seconds['fp32']:.1f} ms, bf16 {1000 * seconds['bf16']:.1f} ms per "
        f"{pass_name} of {len(inputs[0])} images"
    )
    spread = (
        f", median of {len(speedups)} rounds ({speedups[0]:.2f}-{speedups[-1]:.2f}x)"
        if len(speedups) > 1
        else ""
    )
    if speedup >= min_speedup:
        verdict, choice = f"bf16 {speedup:.1f}x faster than fp32{spread}", "bf16"
    elif speedup > 1:
        verdict = f"bf16 only {speedup:.2f}x faster than fp32{spread} (under {min_speedup}x)"
        choice = "fp32"
    else:
        verdict, choice = f"fp32 {1 / speedup:.1f}x faster than bf16{spread}", "fp32"
    reason = f"auto: native bf16 ({found}), {verdict} in a timed {pass_name} ({figures}); {choice}"
    logger.info("precision %s", reason)
    return PrecisionChoice(choice, reason)


def _interleaved_timings(model, inputs, device, rounds: int, own_layouts: bool) -> dict:
    """Seconds of one pass per round and precision, the precisions alternating round by round
    so that a slow spell of a shared machine falls on both."""
    timings: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(max(1, rounds)):
        for precision in timings:
            layout = (
                torch.channels_last
                if own_layouts and use_channels_last(device, precision)
                else torch.contiguous_format
            )
            if own_layouts:
                model.to(memory_format=layout)
            timed = tuple(x.contiguous(memory_format=layout) if x.dim() == 4 else x for x in inputs)
            timings[precision].append(_seconds_per_pass(model, timed, device, precision))
    if own_layouts:
        model.to(memory_format=torch.contiguous_format)
    return timings


def _seconds_per_pass(model, inputs, device, precision: str) -> float:
    """Fastest of a few forward (+ backward in training mode) passes after a warm-up: other
    processes on a shared machine only ever add time, so the minimum is the least noisy."""
    params = [p for p in model.parameters() if p.requires_grad]

    def one_pass() -> None:
        if model.training and params:
            with autocast_context(device, precision):
                loss = model(*inputs).float().square().mean()
            torch.autograd.grad(loss, params, allow_unused=True)  # returned, not accumulated
        else:
            with torch.inference_mode(), autocast_context(device, precision):
                model(*inputs)

    for _ in range(TIMING_WARMUP):
        one_pass()
    timings, started = [], time.perf_counter()
    while len(timings) < TIMING_REPEATS and (
        not timings or time.perf_counter() - started < TIMING_BUDGET_S
    ):
        begin = time.perf_counter()
        one_pass()
        timings.append(time.perf_counter() - begin)
    return min(timings)


# --- running the model ----------------------------------------------------------------------
def autocast_context(device: torch.device, precision: str):
    """bf16 autocast for ``precision == "bf16"``, nothing otherwise."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def use_channels_last(device: torch.device, requested: str) -> bool:
    """Whether the U-Net runs in channels_last on ``device`` for precision ``requested``.

    It speeds up cuDNN convolutions under bf16 (``auto`` on CUDA), and oneDNN's float32
    convolutions on x86 CPUs, which then skip the reorders between PyTorch's layout and their
    own around every convolution. Measured with ``benchmarks/memory_format.py`` on the 8 x 8 and
    28 x 28 U-Nets, one thread of a 2-core Intel Xeon (AVX-512 with native bf16; its AVX2
    kernels forced with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``): with AVX2 kernels 2-14 % less per training step and 7-17 % per
    sampling step; with AVX-512, 2-10 % and 0-5 %. Under bf16 autocast it is 1.5-2.8 x slower,
    so it is used for float32 only: ``"fp32"``, or ``"auto"`` where the CPU has no native bf16.
    """
    if device.type == "cuda":
        return requested == "auto"
    if device.type != "cpu" or torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return False
    return requested == "fp32" or (requested == "auto" and not cpu_bf16_support()[0])


def noise_predictor(
    model: torch.nn.Module, device: torch.device, precision: str, channels_last: bool
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``eps_model(x, t)``: ``model`` under ``precision``, in ``channels_last`` if asked, as float32."""

    def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, precision):
            return model(x, t).float()

    return eps_model


@contextmanager
def torch_threads(num_threads: int | None):
    """Run the block with ``num_threads`` intra-op threads (``None``: leave as is)."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
