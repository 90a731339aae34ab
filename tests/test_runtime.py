"""Device and precision choice: auto precision by the hardware, GPUs that are usable and shared."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddpm import DeviceError, gpu_lock, runtime
from ddpm.gpu_lock import claim_gpu
from ddpm.runtime import choose_precision, resolve_device
from ddpm.unet import UNet
from ddpm.unet_config import UNetConfig

CPU = torch.device("cpu")
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """No cached precision decision and no GPU claim carried over from another test."""
    monkeypatch.setattr(runtime, "_timed_choices", {})
    monkeypatch.setattr(gpu_lock, "_claimed", {})


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    config = UNetConfig(
        image_size=8, base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
        num_groups=4, dropout=0.5,
    )  # fmt: skip
    example = (torch.randn(4, 1, 8, 8), torch.randint(1, 10, (4,)))
    return UNet(config), example


def cpu_reports(monkeypatch, capability: str, onednn_bf16: bool, instructions: bool = True):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: instructions)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")


def timings(monkeypatch, fp32: float, bf16: float) -> list:
    """Make the timed pass report these seconds; returns the list of timed precisions."""
    calls = []

    def seconds(model, inputs, device, precision):
        calls.append(precision)
        return {"fp32": fp32, "bf16": bf16}[precision]

    monkeypatch.setattr(runtime, "_seconds_per_pass", seconds)
    return calls


# --- precision on the CPU -------------------------------------------------------------------
def test_auto_is_fp32_on_a_cpu_without_native_bf16(monkeypatch, tiny_model):
    cpu_reports(monkeypatch, "AVX2", onednn_bf16=False)
    calls = timings(monkeypatch, fp32=1.0, bf16=0.1)  # would pick bf16 if it were timed
    choice = choose_precision("auto", CPU, *tiny_model)
    assert choice == ("fp32", "auto: this CPU has no native bf16 (AVX2); fp32")
    assert calls == []  # an emulated bf16 is not worth timing


def test_auto_is_fp32_on_avx512_without_bf16_instructions(monkeypatch, tiny_model):
    cpu_reports(monkeypatch, "AVX512", onednn_bf16=True, instructions=False)
    timings(monkeypatch, fp32=1.0, bf16=0.1)
    choice = choose_precision("auto", CPU, *tiny_model)
    assert choice.precision == "fp32"
    assert "no native bf16 (AVX512 without bf16 instructions)" in choice.reason


@pytest.mark.parametrize(
    ("fp32", "bf16", "expected", "verdict"),
    [
        (0.18, 0.10, "bf16", "bf16 1.8x faster than fp32"),
        (0.10, 0.30, "fp32", "fp32 3.0x faster than bf16"),
        (0.105, 0.10, "fp32", "bf16 only 1.05x faster than fp32"),  # a tie keeps fp32
    ],
)
def test_auto_with_native_bf16_keeps_the_faster(
    monkeypatch, tiny_model, fp32, bf16, expected, verdict
):
    cpu_reports(monkeypatch, "AVX512", onednn_bf16=True)
    calls = timings(monkeypatch, fp32=fp32, bf16=bf16)
    model, example = tiny_model
    choice = choose_precision("auto", CPU, model, example)
    assert choice.precision == expected
    assert choice.reason.startswith("auto: native bf16 (AVX512_BF16), " + verdict)
    assert f"fp32 {1000 * fp32:.1f} ms, bf16 {1000 * bf16:.1f} ms" in choice.reason
    assert "training step" in choice.reason  # a model in training mode is timed on steps
    # Cached for the same model shape, mode and batch; timed again for sampling (eval mode).
    assert choose_precision("auto", CPU, model, example) == choice
    assert len(calls) == 2
    choose_precision("auto", CPU, model.eval(), example)
    assert len(calls) == 4


def test_auto_without_a_model_to_time_is_fp32(monkeypatch):
    cpu_reports(monkeypatch, "AVX512", onednn_bf16=True)
    choice = choose_precision("auto", CPU)
    assert choice.precision == "fp32" and "no model to time" in choice.reason


def test_timed_pass_leaves_gradients_and_random_numbers_alone(monkeypatch, tiny_model):
    cpu_reports(monkeypatch, "AVX512", onednn_bf16=True)
    model, example = tiny_model
    state = torch.get_rng_state()
    choice = choose_precision("auto", CPU, model, example)  # really timed, with dropout on
    assert choice.precision in ("fp32", "bf16") and "per training step of 4 images" in choice.reason
    assert torch.equal(torch.get_rng_state(), state)
    assert all(p.grad is None for p in model.parameters())
    assert "forward pass" in choose_precision("auto", CPU, model.eval(), example).reason


def test_explicit_precisions_pass_through(monkeypatch, caplog):
    cpu_reports(monkeypatch, "AVX512", onednn_bf16=True)
    assert choose_precision("fp32", CPU) == ("fp32", "fp32 was requested")
    with caplog.at_level(logging.WARNING, logger="ddpm.runtime"):
        assert choose_precision("bf16", CPU) == ("bf16", "bf16 was requested")
    assert not caplog.records


def test_explicit_bf16_on_a_cpu_without_native_bf16_warns(monkeypatch, caplog):
    cpu_reports(monkeypatch, "AVX2", onednn_bf16=False)
    with caplog.at_level(logging.WARNING, logger="ddpm.runtime"):
        choice = choose_precision("bf16", CPU)
    assert choice.precision == "bf16"  # still honoured
    assert choice.reason == "bf16 was requested (emulated: this CPU has no native bf16 (AVX2))"
    assert "emulated and slow" in caplog.text and "'auto' or 'fp32'" in caplog.text


def test_unknown_precision_is_rejected():
    with pytest.raises(DeviceError, match=r"precision must be one of .*'fp16'"):
        choose_precision("fp16", CPU)


# --- memory format -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("capability", "native_bf16", "requested", "expected"),
    [("AVX2", False, "auto", True),  # float32 on AVX2: the study's machine
     ("AVX2", False, "fp32", True),
     ("AVX2", False, "bf16", False),  # emulated bf16: not measured faster in NHWC
     ("AVX512", False, "auto", True),  # AVX-512 without bf16 instructions runs float32
     ("AVX512", True, "auto", False),  # auto may pick bf16 there, 1.5-2.8 x slower in NHWC
     ("AVX512", True, "fp32", True),
     ("DEFAULT", False, "fp32", False)],  # not x86: oneDNN's layouts were not measured
)  # fmt: skip
def test_channels_last_on_the_cpu_is_for_float32_on_x86(
    monkeypatch, capability, native_bf16, requested, expected
):
    cpu_reports(monkeypatch, capability, onednn_bf16=native_bf16, instructions=native_bf16)
    assert runtime.use_channels_last(CPU, requested) is expected


def test_channels_last_on_cuda_goes_with_auto():
    cuda = torch.device("cuda")
    assert runtime.use_channels_last(cuda, "auto") is True
    assert runtime.use_channels_last(cuda, "fp32") is False


@pytest.mark.parametrize(
    ("supported", "expected"),
    [(True, ("bf16", "auto: this GPU supports bf16; bf16")),
     (False, ("fp32", "auto: this GPU has no native bf16; fp32 (TF32)"))],
)  # fmt: skip
def test_auto_on_cuda_follows_bf16_support(monkeypatch, tiny_model, supported, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: supported)
    timings(monkeypatch, fp32=0.1, bf16=1.0)  # no timing on a GPU
    assert choose_precision("auto", torch.device("cuda", 0), *tiny_model) == expected


# --- GPUs -----------------------------------------------------------------------------------
def fake_gpus(monkeypatch, count: int, cuda_version: str | None = "12.4"):
    monkeypatch.setattr(torch.version, "cuda", cuda_version)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: 1 / 0)  # no UUIDs


def test_cuda_on_a_cpu_build_of_pytorch_names_the_cause(monkeypatch):
    fake_gpus(monkeypatch, 0, cuda_version=None)
    with pytest.raises(DeviceError, match="is a CPU build; install a CUDA build in this env"):
        resolve_device("cuda")


def test_cuda_without_a_visible_gpu_names_the_cause(monkeypatch):
    fake_gpus(monkeypatch, 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(DeviceError, match="sees no CUDA device: there is no GPU or no working"):
        resolve_device("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(
        DeviceError, match=r"\(check `nvidia-smi`\), or CUDA_VISIBLE_DEVICES='' hid"
    ):
        resolve_device("cuda:0")


def test_cuda_index_beyond_the_visible_gpus_is_an_error(monkeypatch):
    fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    with pytest.raises(DeviceError, match=r"only 2 GPU\(s\) are visible \(cuda:0 to cuda:1\) wi"):
        resolve_device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # pinned: no lock taken


def test_one_visible_gpu_is_used_without_a_lock(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, 1)
    monkeypatch.setenv("DDPM_GPU_LOCK_DIR", str(tmp_path))
    assert resolve_device("cuda") == resolve_device("auto") == torch.device("cuda", 0)
    assert list(tmp_path.iterdir()) == []


def test_lock_holders_get_different_gpus_then_share_evenly(monkeypatch, tmp_path, caplog):
    fake_gpus(monkeypatch, 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("DDPM_GPU_LOCK_DIR", str(tmp_path))
    holders = []  # each holder's claim stays open, as in a separate process

    def new_holder() -> int:
        holders.append({})
        monkeypatch.setattr(gpu_lock, "_claimed", holders[-1])
        return resolve_device("cuda").index

    assert [new_holder(), new_holder()] == [0, 1]
    assert resolve_device("cuda").index == 1  # the same process keeps its GPU
    with caplog.at_level(logging.WARNING, logger="ddpm.gpu_lock"):
        assert [new_holder(), new_holder()] == [0, 1]  # over-full: one more job on each
    assert "all 2 GPUs are in use" in caplog.text


CHILD = """
import sys, torch
torch.version.cuda = "12.4"
torch.cuda.device_count = lambda: 2
torch.cuda.is_available = lambda: True
torch.cuda.get_device_properties = lambda index: 1 / 0
from ddpm.runtime import resolve_device
print(resolve_device("cuda").index, flush=True)
sys.stdin.readline()
"""


def test_a_gpu_held_by_another_process_is_skipped_until_it_exits(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, 2)
    environment = {**os.environ, "DDPM_GPU_LOCK_DIR": str(tmp_path), "PYTHONPATH": str(SRC)}
    environment.pop("CUDA_VISIBLE_DEVICES", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=environment,
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "0"
        assert claim_gpu(2, tmp_path) == 1
    finally:
        child.communicate("\n", timeout=60)  # the child exits; the OS drops its lock
    monkeypatch.setattr(gpu_lock, "_claimed", {})
    assert claim_gpu(2, tmp_path) == 0


def test_a_job_given_a_gpu_that_cannot_use_it_stops_naming_the_request(monkeypatch):
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime.torch.cuda, "device_count", lambda: 0)
    with pytest.raises(runtime.DeviceError) as error:
        runtime.resolve_job_device("auto", "gres=gpu:1")
    message = str(error.value)
    assert "given a GPU by its profile (gres=gpu:1)" in message, message
    # the cause, as resolve_device words it (a CPU build, or no CUDA device), and the way out
    assert "cpu" in message
    # A job without a GPU request stays where "auto" puts it.
    assert runtime.resolve_job_device("auto", None) == runtime.torch.device("cpu")


def test_a_job_given_a_gpu_but_told_cpu_runs_on_the_cpu_and_says_so(caplog):
    with caplog.at_level("WARNING", logger="ddpm.runtime"):
        device = runtime.resolve_job_device("cpu", "gpu=1")
    assert device.type == "cpu"
    assert "GPU stays idle" in caplog.text
