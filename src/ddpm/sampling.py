"""Generate images from a trained model, and store or show them.

``generate`` loads ``model.pt`` (written by :func:`ddpm.training.train`) and draws
samples with ancestral sampling (Algorithm 2 of Ho et al., T model calls per image)
or DDIM (Song et al. 2021, ``ddim_steps`` calls per image). Samples are reproducible
from ``seed`` for a given ``batch_size``: the noise of each batch comes from one CPU
generator consumed batch after batch.

With ``progress_dir``, every finished batch is kept there with the generator's state
after it, so that a job killed by a time limit or a preemption resumes at its next batch
and ends with the same images, bit for bit on the CPU, as a job never interrupted
(:class:`SamplingProgress`).

``reconstruction_series`` noises real images to x_t for several t and denoises them
back (report 002, figure 4).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from . import ConfigError, DataError
from .checkpoints import load_model
from .diffusion import from_model_range, to_model_range
from .files import atomic_save_npz, atomic_write
from .runtime import (
    PrecisionChoice,
    choose_precision,
    noise_predictor,
    resolve_device,
    use_channels_last,
)

__all__ = [
    "SAMPLERS",
    "SamplingProgress",
    "clear_progress",
    "generate",
    "image_grid",
    "load_samples",
    "reconstruction_series",
    "save_png",
    "save_reconstruction",
    "save_sample_grid",
    "save_samples",
]

logger = logging.getLogger(__name__)

SAMPLERS = ("ancestral", "ddim")


def _load_noise_predictor(
    model_path, device: str, precision: str | PrecisionChoice, batch_size: int
):
    """Load ``model.pt`` for inference: (eps_model(x, t), diffusion, model config, device,
    the precision used, the model's record).

    ``eps_model`` runs the EMA U-Net in float32 or bf16 autocast and returns float32; for
    ``precision="auto"`` :func:`ddpm.runtime.choose_precision` picks by the hardware, timing
    forward passes of this model on a batch of ``batch_size`` where that decides; a
    :class:`~ddpm.runtime.PrecisionChoice` (a study's decision) is taken as it is.
    """
    device = resolve_device(device)
    decided = precision if isinstance(precision, PrecisionChoice) else None
    channels_last = use_channels_last(device, decided.precision if decided else precision)
    model, diffusion, record = load_model(model_path, device=device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    c = model.config
    example = torch.Generator().manual_seed(0)  # not the sampling generator: its noise is fixed
    example_input = (
        torch.randn(batch_size, c.image_channels, c.image_size, c.image_size, generator=example),
        torch.full((batch_size,), max(1, diffusion.T // 2)),
    )
    choice = decided or choose_precision(
        precision, device, model, tuple(x.to(device) for x in example_input)
    )
    logger.info("loaded %s on %s, precision %s", model_path, device, choice.reason)
    eps_model = noise_predictor(model, device, choice.precision, channels_last)
    return eps_model, diffusion, c, device, choice.precision, record


def _check_generate_arguments(sampler, num_samples, batch_size, ddim_steps, eta) -> None:
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    for name, value in (
        ("num_samples", num_samples),
        ("batch_size", batch_size),
        ("ddim_steps", ddim_steps),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if eta < 0:
        raise ConfigError(f"eta must be >= 0, got {eta}")


def _check_ddim_steps(sampler: str, ddim_steps: int, T: int, model_path) -> None:
    # The one policy for ddim_steps > T (the config check and the diffusion agree): an error,
    # since fewer steps than asked for would silently be a different sampler.
    if sampler == "ddim" and ddim_steps > T:
        raise ConfigError(
            f"ddim_steps={ddim_steps} exceeds T={T} of {model_path}; DDIM takes at most T "
            f"steps: give ddim_steps <= {T}"
        )


def _log_progress(index, num_batches, done, num_samples, drawn_here, steps, started) -> None:
    """One line per batch: how far, how fast (over the batches this process drew), how long."""
    seconds = time.perf_counter() - started
    logger.info(
        "batch %d/%d: %d/%d images, %.1f ms per image per step, ETA %.0f s",
        index + 1,
        num_batches,
        done,
        num_samples,
        1000 * seconds / (drawn_here * steps),
        seconds / drawn_here * (num_samples - done),
    )


def generate(
    model_path: str | os.PathLike,
    num_samples: int,
    *,
    sampler: str = "ancestral",
    ddim_steps: int = 50,
    eta: float = 0.0,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "auto",
    precision: str | PrecisionChoice = "auto",
    progress_dir: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Draw ``num_samples`` images from the EMA model in ``model_path``.

    Args:
        model_path: a ``model.pt`` written by training.
        num_samples: how many images.
        sampler: ``"ancestral"`` (the DDPM reverse chain, T steps) or ``"ddim"``.
        ddim_steps: DDIM steps, at most T (more is a ``ConfigError``).
        eta: DDIM's noise scale (0 = deterministic given x_T, 1 = DDPM-like).
        batch_size: images per model call.
        seed: seed of the noise; the same seed and batch size give the same images.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``...
        precision: ``"auto"`` (bf16 autocast + channels_last on a GPU with bf16; on a CPU,
            bf16 only where it is native and a timed forward pass says it is faster, else
            float32, in channels_last on x86), ``"bf16"`` or
            ``"fp32"``, or a precision decided beforehand for a whole study
            (:mod:`ddpm.study_precision`). The same precision on the same kind of CPU gives
            the same images.
        progress_dir: where finished batches are kept until the caller has stored the images
            (then :func:`clear_progress`); started again after a kill, sampling resumes
            at the first batch missing there. ``None`` keeps nothing.

    Returns:
        uint8 tensor (num_samples, C, H, W) on the CPU.
    """
    _check_generate_arguments(sampler, num_samples, batch_size, ddim_steps, eta)
    eps_model, diffusion, c, device, used_precision, _ = _load_noise_predictor(
        model_path, device, precision, min(batch_size, num_samples)
    )
    _check_ddim_steps(sampler, ddim_steps, diffusion.T, model_path)
    steps = diffusion.T if sampler == "ancestral" else ddim_steps
    generator = torch.Generator().manual_seed(seed)
    num_batches = -(-num_samples // batch_size)
    settings = {
        "model_sha256": _file_sha256(model_path),
        **dict(sampler=sampler, steps=steps, eta=float(eta), batch_size=batch_size),
        **dict(num_samples=num_samples, seed=seed, precision=used_precision),
        "device_type": device.type,
    }
    progress = SamplingProgress(progress_dir, settings) if progress_dir is not None else None
    batches = progress.resume(generator) if progress is not None else []
    logger.info(
        "sampling %d images: %s with %d steps, %d batch(es) of up to %d%s",
        *(num_samples, sampler, steps, num_batches, batch_size),
        f", resuming at batch {len(batches) + 1}" if batches else "",
    )
    show_bar = sys.stderr.isatty()
    started, done_before = time.perf_counter(), sum(len(b) for b in batches)
    for index in range(len(batches), num_batches):
        n = min(batch_size, num_samples - index * batch_size)
        shape = (n, c.image_channels, c.image_size, c.image_size)
        batch = _sample_batch(
            eps_model, diffusion, shape, sampler, ddim_steps, eta, generator, device, show_bar
        )
        batches.append(batch)
        if progress is not None:
            progress.keep(index, batch, generator)
        done = index * batch_size + n
        _log_progress(index, num_batches, done, num_samples, done - done_before, steps, started)
    return torch.cat(batches)  # outside inference mode: a plain tensor the caller may modify


def _file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SamplingProgress:
    """The finished batches of one sampling, kept in ``directory`` (``batch-00000.pt``, ...).

    Each file holds the batch's images, the noise generator's state after the batch, and the
    ``settings`` it was drawn with (model file digest, sampler, batch size, seed, precision...).
    Files are written atomically; on resuming, the longest run of intact batches with the same
    settings is taken and the rest is removed, so a kill at any moment costs at most the batch
    under way.
    """

    def __init__(self, directory: str | os.PathLike, settings: Mapping):
        self.directory = Path(directory)
        self.settings = dict(settings)

    def _path(self, index: int) -> Path:
        return self.directory / f"batch-{index:05d}.pt"

    def resume(self, generator: torch.Generator) -> list[torch.Tensor]:
        """The kept batches, in order; ``generator`` is set to its state after the last one."""
        batches: list[torch.Tensor] = []
        while self._path(len(batches)).is_file():
            path = self._path(len(batches))
            try:
                kept = torch.load(path, map_location="cpu", weights_only=True)
                usable = kept["settings"] == self.settings and kept["index"] == len(batches)
            except Exception as err:  # a file cut short by a kill is as good as missing
                logger.warning("ignoring %s, which cannot be read (%s)", path, err)
                usable = False
            if not usable:
                logger.info("%s was drawn with other settings or is damaged: not resumed", path)
                break
            batches.append(kept["images"])
            generator.set_state(kept["generator"])
        self._remove_from(len(batches))
        if batches:
            logger.info("resuming: %d batch(es) already drawn in %s", len(batches), self.directory)
        return batches

    def keep(self, index: int, images: torch.Tensor, generator: torch.Generator) -> None:
        """Store batch ``index`` and the generator's state after it."""
        content = {
            "settings": self.settings,
            "index": index,
            "images": images.contiguous(),
            "generator": generator.get_state(),
        }
        atomic_write(self._path(index), lambda tmp: torch.save(content, tmp))

    def _remove_from(self, index: int) -> None:
        for path in sorted(self.directory.glob("batch-*.pt")):
            if int(path.stem.split("-")[1]) >= index:
                path.unlink(missing_ok=True)


def clear_progress(directory: str | os.PathLike) -> None:
    """Remove the batches :func:`generate` kept in ``directory``, once the images they make up
    are stored elsewhere."""
    shutil.rmtree(directory, ignore_errors=True)


# Inference mode, not just no_grad: no autograd version counters or view tracking either.
@torch.inference_mode()
def _sample_batch(eps_model, diffusion, shape, sampler, ddim_steps, eta, generator, device, bar):
    """One batch of uint8 images (CPU) from noise drawn from ``generator``."""
    if sampler == "ancestral":
        images = diffusion.sample(
            eps_model, shape, generator=generator, device=device, progress=bar
        )
    else:
        images = diffusion.ddim_sample(
            eps_model,
            shape,
            steps=ddim_steps,
            eta=eta,
            generator=generator,
            device=device,
            progress=bar,
        )
    return from_model_range(images).cpu()


def reconstruction_series(
    model_path: str | os.PathLike,
    images_uint8: torch.Tensor,
    fractions,
    *,
    seed: int = 0,
    device: str = "auto",
    precision: str | PrecisionChoice = "auto",
) -> dict[str, np.ndarray]:
    """Noise real images to x_t with q(x_t | x_0) and denoise them back (Algorithm 2 from t).

    Args:
        model_path: a ``model.pt`` written by training.
        images_uint8: uint8 images (N, C, H, W) matching the model.
        fractions: where to start, as fractions of T in (0, 1]; t = round(fraction * T),
            at least 1. Fractions that round to the same t are kept once.
        seed: seed of the forward noise and of the reverse chain.
        device, precision: as for :func:`generate`.

    Returns:
        ``{"t": int64 (K,), "originals": uint8 (N, C, H, W),
        "reconstructions": uint8 (K, N, C, H, W)}``, one row per t in increasing order;
        store it with :func:`save_reconstruction`.
    """
    if not isinstance(images_uint8, torch.Tensor) or images_uint8.dtype != torch.uint8:
        raise ConfigError("images_uint8 must be a uint8 tensor (N, C, H, W)")
    fractions = list(fractions)
    bad = [f for f in fractions if not 0 < f <= 1]
    if not fractions or bad:
        raise ConfigError(
            f"fractions of T must be a non-empty list of numbers in (0, 1], got {fractions}"
        )
    eps_model, diffusion, _, device, _, _ = _load_noise_predictor(
        model_path, device, precision, max(1, len(images_uint8))
    )
    steps = sorted({max(1, round(f * diffusion.T)) for f in fractions})
    x0 = to_model_range(images_uint8).to(device)
    generator = torch.Generator().manual_seed(seed)
    reconstructions = []
    for t in steps:
        logger.info("reconstructing %d images from t = %d of %d", len(x0), t, diffusion.T)
        with torch.inference_mode():
            x = diffusion.reconstruct(eps_model, x0, t, generator=generator)
            reconstructions.append(from_model_range(x).cpu().numpy())
    return {
        "t": np.asarray(steps, dtype=np.int64),
        "originals": images_uint8.cpu().numpy(),
        "reconstructions": np.stack(reconstructions),
    }


def save_reconstruction(path: str | os.PathLike, series: dict[str, np.ndarray]) -> Path:
    """Write what :func:`reconstruction_series` returns as an ``.npz`` with the same keys."""
    missing = {"t", "originals", "reconstructions"} - set(series)
    if missing:
        raise ConfigError(
            f"series lacks {sorted(missing)}; pass the dict from reconstruction_series"
        )
    path = Path(path)
    arrays = {key: np.asarray(series[key]) for key in ("t", "originals", "reconstructions")}
    atomic_save_npz(path, **arrays)
    return path


def image_grid(images_uint8, nrow: int = 8, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile images (N, C, H, W) into one uint8 array (rows, cols, C), ``nrow`` images per row."""
    images = (
        images_uint8.numpy() if isinstance(images_uint8, torch.Tensor) else np.asarray(images_uint8)
    )
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ConfigError(
            f"image_grid needs uint8 images of shape (N, C, H, W), got {images.dtype} {images.shape}"
        )
    if not isinstance(nrow, int) or nrow < 1:
        raise ConfigError(f"nrow (images per row) must be a positive integer, got {nrow!r}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols) if n else 0
    grid = np.full(
        (rows * (h + padding) + padding, cols * (w + padding) + padding, c),
        pad_value,
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        r, col = divmod(index, cols)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = image.transpose(1, 2, 0)
    return grid


def save_png(path: str | os.PathLike, grid: np.ndarray) -> Path:
    """Write an (H, W, C) uint8 array (C = 1 or 3) as a PNG."""
    from PIL import Image

    grid = np.asarray(grid)
    if grid.dtype != np.uint8 or grid.ndim != 3 or grid.shape[2] not in (1, 3):
        raise ConfigError(
            f"save_png needs a uint8 array (H, W, 1 or 3), got {grid.dtype} {grid.shape}"
        )
    image = Image.fromarray(grid[:, :, 0] if grid.shape[2] == 1 else grid)
    path = Path(path)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def save_sample_grid(path: str | os.PathLike, images, count: int, nrow: int | None = None) -> int:
    """Write the first ``count`` of ``images`` as one PNG grid; return how many it shows.

    Without ``nrow`` the grid is as square as the images allow: ``floor(sqrt(shown))``
    images per row.
    """
    shown = images[:count]
    if len(shown) == 0:
        raise ConfigError(f"no images to draw: count is {count} and there are {len(images)} images")
    save_png(path, image_grid(shown, nrow=nrow or max(1, int(len(shown) ** 0.5))))
    return len(shown)


def save_samples(path: str | os.PathLike, images) -> Path:
    """Store uint8 images (N, C, H, W) as array ``images`` of a compressed ``.npz``."""
    array = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.dtype != np.uint8 or array.ndim != 4:
        raise ConfigError(
            f"save_samples needs uint8 images (N, C, H, W), got {array.dtype} {array.shape}"
        )
    path = Path(path)
    atomic_save_npz(path, images=array)
    return path


def load_samples(path: str | os.PathLike) -> torch.Tensor:
    """Read images written by :func:`save_samples` as a uint8 tensor (N, C, H, W)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no samples file at {path}; generate one with `ddpm sample`")
    try:
        with np.load(path) as content:
            if "images" not in content:
                raise DataError(f"{path} has no array 'images' (it has {sorted(content.files)})")
            array = content["images"]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a readable samples file: {err}") from err
    if array.dtype != np.uint8 or array.ndim != 4:
        raise DataError(
            f"{path}: 'images' must be uint8 (N, C, H, W), got {array.dtype} {array.shape}"
        )
    return torch.from_numpy(array)
