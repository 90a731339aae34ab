"""The forward process shown on images: x_t ~ q(x_t | x_0) at a few t (report 003, figure 2)
and a photo through the step-by-step chain q(x_t | x_{t-1}) (thesis figure 4.3); and the images
the analyses start from: the colour photos scikit-learn ships and one of its 8 x 8 digits.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import ConfigError, DataError
from ..diffusion import GaussianDiffusion, from_model_range, to_model_range
from ..files import atomic_save_npz
from ..schedules import NoiseSchedule, make_schedule

__all__ = [
    "DEFAULT_DESTRUCTION_KEEP",
    "DIGIT",
    "PHOTOS",
    "forward_samples",
    "iterative_destruction",
    "load_T",
    "load_digit",
    "load_images_by_t",
    "load_photo",
    "save_images_by_t",
]

PHOTOS = ("china.jpg", "flower.jpg")

DIGIT = "digit"
"""The name of :func:`load_digit`'s image among the photos."""


def load_photo(name: str = "china.jpg") -> np.ndarray:
    """A colour photo shipped with scikit-learn, as uint8 (H, W, 3) (427 x 640 for both)."""
    if name not in PHOTOS:
        raise DataError(f"Unknown photo {name!r}; scikit-learn ships {PHOTOS}")
    from sklearn.datasets import load_sample_image

    return np.asarray(load_sample_image(name), dtype=np.uint8)


def load_digit() -> np.ndarray:
    """One of scikit-learn's 1,797 8 x 8 digits as the ``digits`` dataset stores it (0..16 scaled
    to 0..255), uint8 (8, 8): the one of median pixel variance (ties: the first), a typical digit
    rather than a chosen one."""
    from sklearn.datasets import load_digits

    images = np.rint(load_digits().images * (255.0 / 16.0)).astype(np.uint8)
    variances = (images.astype(np.float64) / 127.5 - 1.0).reshape(len(images), -1).var(axis=1)
    order = np.argsort(variances, kind="stable")
    return images[order[(len(images) - 1) // 2]]


logger = logging.getLogger(__name__)

# Steps shown in the thesis-style destruction figure. With T = 5000 linear betas from 0.001
# to 0.02, alpha_bar_t is 0.89 at t = 100, 0.38 at 500, 0.055 at 1000, 0.003 at 1500 and
# 7e-5 at 2000: the last column is pure noise.
DEFAULT_DESTRUCTION_KEEP = (0, 50, 100, 200, 500, 1000, 1500, 5000)
"""The steps thesis figure 4.3 shows for T = 5000; other T keep the same fractions of T."""


def _fractions_of(T: int, fractions) -> list[int]:
    return sorted({round(T * f) for f in fractions})


# --- forward samples and the iterative destruction ------------------------------------------
def forward_samples(
    image: np.ndarray,
    schedule: NoiseSchedule,
    ts: Iterable[int] | None = None,
    seed: int = 0,
) -> dict[int, np.ndarray]:
    """x_t ~ q(x_t | x_0) for each t in ``ts`` (report 003, figure 2), as float32 arrays.

    ``ts`` defaults to 0, T/10, T/4, T/2, 3T/4 and T (0, 10, 25, 50, 75, 100 for T = 100).

    ``image`` is uint8, (H, W) or (C, H, W); the results have its shape, in model units
    (x_0 in [-1, 1], noise unbounded). t = 0 returns x_0. Seeded by ``seed``.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ConfigError(
            f"image must be uint8 (H, W) or (C, H, W), got {image.dtype} {image.shape}"
        )
    if ts is None:
        ts = _fractions_of(schedule.T, (0, 0.1, 0.25, 0.5, 0.75, 1.0))
    diffusion = GaussianDiffusion(schedule)
    x0 = to_model_range(torch.tensor(image)).unsqueeze(0)
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for t in ts:
        t = int(t)
        if not 0 <= t <= schedule.T:
            raise ConfigError(f"timestep {t} is outside 0..T={schedule.T}")
        x_t = x0 if t == 0 else diffusion.q_sample(x0, t, generator=generator)
        out[t] = x_t[0].numpy().astype(np.float32)
    return out


def iterative_destruction(
    photo: np.ndarray,
    T: int = 5000,
    beta_start: float = 0.001,
    beta_end: float = 0.02,
    keep: Iterable[int] | None = None,
    seed: int = 0,
    step_by_step: bool = True,
) -> dict[int, np.ndarray]:
    """Thesis figure 4.3: a photo through the chain q(x_t | x_{t-1}).

    Args:
        photo: uint8 (H, W, 3) or (H, W) at full resolution (the thesis: 4016 x 6016).
        T, beta_start, beta_end: the linear schedule (the thesis: 5000 steps, 0.001 to 0.02).
        keep: the steps returned, in 0..T; the chain stops at the last one. Default:
            DEFAULT_DESTRUCTION_KEEP, as fractions of T.
        seed: seeds the noise.
        step_by_step: run every step with :meth:`GaussianDiffusion.q_step`, fresh noise for
            every pixel and channel (about 10 ms per step at 427 x 640 x 3 on one core).
            ``False`` jumps from one kept step s to the next t with
            q(x_t | x_s) = N(sqrt(alpha_bar_t / alpha_bar_s) x_s, (1 - alpha_bar_t / alpha_bar_s) I):
            the chain is Markov, so the kept images have the same joint distribution, at one
            draw per kept step instead of one per step; the images differ, their statistics do not.

    Returns {t: uint8 image of the photo's shape}; x_t is clipped to [-1, 1] for display,
    so a pure-noise image shows about a third of its values saturated.
    """
    if keep is None:
        keep = _fractions_of(T, [k / 5000 for k in DEFAULT_DESTRUCTION_KEEP])
    photo = np.asarray(photo)
    if photo.dtype != np.uint8 or photo.ndim not in (2, 3):
        raise ConfigError(
            f"photo must be uint8 (H, W) or (H, W, 3), got {photo.dtype} {photo.shape}"
        )
    keep = sorted({int(t) for t in keep})
    if not keep or keep[0] < 0 or keep[-1] > T:
        raise ConfigError(f"keep must name steps in 0..T={T}, got {keep}")
    schedule = make_schedule("linear", T, beta_start=beta_start, beta_end=beta_end)
    started = time.perf_counter()
    run = _run_chain if step_by_step else _jump_chain
    out = run(GaussianDiffusion(schedule), photo, keep, seed)
    logger.info(
        "destruction of a %s photo over %d steps: %.1f s",
        "x".join(map(str, photo.shape)),
        keep[-1],
        time.perf_counter() - started,
    )
    return out


def _photo_tensor(photo: np.ndarray):
    """(1, C, H, W) in [-1, 1], and the function that turns such a tensor back into a photo."""
    channels_last = photo.ndim == 3
    x = to_model_range(torch.tensor(photo))
    x = (x.permute(2, 0, 1) if channels_last else x[None]).unsqueeze(0)

    def as_photo(x_t: torch.Tensor) -> np.ndarray:
        image = from_model_range(x_t[0])
        return (image.permute(1, 2, 0) if channels_last else image[0]).numpy()

    return x, as_photo


def _jump_chain(
    diffusion: GaussianDiffusion, photo: np.ndarray, keep: list[int], seed: int
) -> dict[int, np.ndarray]:
    """x_t for every t in ``keep`` (sorted), each drawn from q(x_t | x_s) of the previous kept s."""
    x, as_photo = _photo_tensor(photo)
    generator = torch.Generator().manual_seed(seed)
    alpha_bar = np.concatenate([[1.0], diffusion.schedule.alpha_bar])
    out, previous = ({0: as_photo(x)} if 0 in keep else {}), 0
    for t in (t for t in keep if t > 0):
        ratio = alpha_bar[t] / alpha_bar[previous]  # alpha_bar_t / alpha_bar_s
        noise = torch.randn(x.shape, generator=generator)
        x = math.sqrt(ratio) * x + math.sqrt(1.0 - ratio) * noise
        out[t], previous = as_photo(x), t
    return out


def _run_chain(
    diffusion: GaussianDiffusion, photo: np.ndarray, keep: list[int], seed: int
) -> dict[int, np.ndarray]:
    """x_t for every t in ``keep`` (sorted), as photos, from one chain of q_step."""
    x, as_photo = _photo_tensor(photo)
    generator = torch.Generator().manual_seed(seed)
    out = {0: as_photo(x)} if 0 in keep else {}
    started = time.perf_counter()
    noise = torch.empty_like(x)  # refilled in place: no allocation per step
    for t in tqdm(range(1, keep[-1] + 1), desc="destruction", mininterval=10, leave=False):
        torch.randn(noise.shape, generator=generator, out=noise)
        x = diffusion.q_step(x, t, noise=noise)
        if t in keep:
            out[t] = as_photo(x)
        if t % max(1, keep[-1] // 10) == 0:
            logger.info(
                "destruction: step %d / %d (%.1f s)", t, keep[-1], time.perf_counter() - started
            )
    return out


def save_images_by_t(path, images_by_t: Mapping[int, np.ndarray], T: int | None = None) -> None:
    """Write {t: image} to an .npz file with one array per step, named ``t<step>``.

    ``T``, the schedule's number of steps, is stored too (as ``T``) so that a figure can
    say which schedule the images come from; read it back with :func:`load_T`.
    """
    arrays = {f"t{int(t)}": np.asarray(image) for t, image in images_by_t.items()}
    if T is not None:
        arrays["T"] = np.asarray(int(T))
    atomic_save_npz(path, **arrays)


def load_T(path) -> int | None:
    """The ``T`` that :func:`save_images_by_t` stored, or None if it stored none."""
    with np.load(path) as archive:
        return int(archive["T"]) if "T" in archive.files else None


def load_images_by_t(path) -> dict[int, np.ndarray]:
    """Read what :func:`save_images_by_t` wrote, sorted by t."""
    with np.load(path) as archive:
        names = [name for name in archive.files if name.startswith("t") and name[1:].isdigit()]
        if not names:
            raise DataError(f"{path} holds no arrays named t<step>; write it with save_images_by_t")
        return {int(name[1:]): archive[name] for name in sorted(names, key=lambda n: int(n[1:]))}
