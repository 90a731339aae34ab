"""The closeness experiment of thesis section 5.1 as the study runs it: both readings of
:mod:`.closeness` for every schedule, image and image size, against t, with the exact
counterparts, the pure-noise band, and the check of resolution-shifted schedules.

The images are scikit-learn's photos (grayscale, centre-cropped, Lanczos-resized to each size)
and its ``digit`` (:func:`ddpm.data.load_digit`), enlarged by nearest neighbour to each size (a
multiple of 8), as the 8 x 8 digits are when a study trains them at a larger size. The first
image is the thesis's; the others share its noise draws (common random numbers), so their
pixels reading, which never sees the image, is the first image's.

The **shift check** asks whether shifting the log-SNR by what the analysis predicts for each
size (:mod:`.band_entry`: the band-entry level at this size minus that at the smallest) makes
every size enter the band at the same step, t/T, as the smallest. Each schedule, shifted per
size, is run through the copies reading with the same noise, under two rules: ``predicted``
and ``simple_diffusion`` (Hoogeboom et al.'s 2 ln(d_0 / d) for side d against the smallest d_0).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import ConfigError
from ..data.resize import resize_images
from ..schedules import ScheduleSpec, unique_specs
from .band_entry import crossing_alpha_bar, logit, predict_band_entry
from .closeness import batch_closeness, noise_band, pure_noise_closeness, square_grayscale
from .forward import DIGIT, PHOTOS, load_digit, load_photo

__all__ = [
    "IMAGES",
    "SHIFT_RULES",
    "ClosenessResult",
    "closeness_image",
    "closeness_outputs",
    "closeness_study",
    "closeness_table",
    "first_inside",
    "shift_spread",
]

logger = logging.getLogger(__name__)

#: The images the closeness experiment can use, by name.
IMAGES = (*PHOTOS, DIGIT)

#: How a schedule is shifted for each image size in the shift check.
SHIFT_RULES = ("predicted", "simple_diffusion")

READINGS = ("copies", "pixels")


class ClosenessResult(NamedTuple):
    """:func:`closeness_study`'s output: the closeness table and the shift check's entries."""

    table: pd.DataFrame
    shifted: pd.DataFrame


def closeness_image(image: str | np.ndarray, size: int) -> np.ndarray:
    """The uint8 (size, size) grayscale image the experiment noises: a photo (name or array)
    through :func:`square_grayscale`, or ``"digit"`` enlarged by nearest neighbour."""
    if isinstance(image, str) and image == DIGIT:
        digit = load_digit()
        if size % digit.shape[0]:
            raise ConfigError(
                f"the digit is 8 x 8 and is enlarged by a whole factor: image size {size} is not "
                "a multiple of 8; use sizes such as 8, 16, 32, 64"
            )
        return resize_images(digit[None, None], size, "nearest")[0, 0]
    photo = load_photo(image) if isinstance(image, str) else image
    return square_grayscale(photo, size)


def first_inside(t: np.ndarray, values: np.ndarray, low, high) -> float:
    """The first t whose value lies in [low, high] (NaN values never do); NaN if none."""
    inside = ~np.isnan(values) & (values >= low) & (values <= high)
    return float(t[inside][0]) if inside.any() else math.nan


class _Settings(NamedTuple):
    """The arguments of :func:`closeness_study` that every image size uses alike."""

    batch_size: int
    seed: int
    noise_repeats: int
    band_percentiles: tuple[float, float]
    pixels_t_stride: int
    include_t0: bool


def closeness_table(
    specs: Sequence[ScheduleSpec], photo: str | np.ndarray = "china.jpg", **options
) -> pd.DataFrame:
    """The thesis's closeness to noise, both readings and the exact counterparts: the table of
    :func:`closeness_study` (same arguments), without the shift check."""
    return closeness_study(specs, photo, shift_check=False, **options).table


def closeness_study(
    specs: Sequence[ScheduleSpec],
    photo: str | np.ndarray = "china.jpg",
    image_sizes: Sequence[int] = (8, 16, 32, 64),
    batch_size: int = 50,
    seed: int = 0,
    noise_repeats: int = 200,
    band_percentiles: tuple[float, float] = (2.5, 97.5),
    pixels_max_size: int | None = 64,
    pixels_t_stride: int = 1,
    include_t0: bool = True,
    photo_name: str | None = None,
    other_images: Sequence[str] = (),
    shift_check: bool = True,
) -> ClosenessResult:
    """The thesis's closeness to noise, both readings and the exact counterparts, and the
    check of resolution-shifted schedules.

    Args:
        specs: the schedules (:class:`ddpm.spec.ScheduleSpec`), e.g. from
            :func:`ddpm.schedules_from_config`; each label appears once per T.
        photo: a scikit-learn photo name or a uint8 array (H, W, 3) / (H, W); it is made
            grayscale, centre-cropped square and resized to each of ``image_sizes``.
        batch_size: n, the number of noised copies (the thesis used 50).
        seed: the noise for image size s comes from ``default_rng([seed, s*s, 0])``, one
            (n, D) draw per t in order: each t gets fresh noise, as when the batch is passed
            through q(x_t | x_0) at every step, and every schedule at step t sees the same
            draw (common random numbers), so schedules differ only by alpha_bar_t.
        noise_repeats: batches of pure noise that make the noise band (per image size).
        band_percentiles: the band's lower and upper percentiles over those repeats.
        pixels_max_size: compute the D x D reading only for sizes up to this (None: all);
            it costs O(n D^2 / 2) per t, about 15 ms at 64 x 64.
        pixels_t_stride: compute the D x D reading at t = 0, 1 and every multiple of this.
        include_t0: add t = 0 (x_0 itself: alpha_bar = 1, log-SNR and KL infinite).
        photo_name: the name recorded for an array ``photo``.
        other_images: more images (names of :data:`IMAGES`), noised with the same draws; their
            rows follow the first image's, which are the same with or without them.
        shift_check: also run every schedule shifted per size (see the module docstring).

    Returns the table, one row per (image, schedule, T, image_size, t) with columns photo,
    schedule, beta_schedule, T, image_size, num_pixels, batch_size, t, alpha_bar, log_snr,
    kl_bits_per_dim, closeness_copies, closeness_pixels (NaN where not computed),
    pixel_variance (x0c . x0c / (D - 1) of the image at this size) and noise_mean /
    noise_band_low / noise_band_high / noise_sd for each reading (``_copies``, ``_pixels``);
    and the shift check, one row per (image, schedule, image size, rule) of ``none`` and
    :data:`SHIFT_RULES` with columns photo, schedule, beta_schedule, T, image_size,
    shift_rule, shift, t_enter_copies, t_over_T and log_snr_enter_copies (of the shifted
    schedule); empty without ``shift_check``.
    """
    specs = unique_specs(specs)
    _check_arguments(batch_size, pixels_t_stride, image_sizes, other_images)
    name = photo_name or (photo if isinstance(photo, str) else "photo")
    images = {name: photo, **{other: other for other in other_images if other != name}}
    sizes = [int(size) for size in image_sizes]
    settings = _Settings(
        batch_size, seed, noise_repeats, band_percentiles, pixels_t_stride, include_t0
    )
    x0s = {
        size: {key: _model_range(closeness_image(image, size)) for key, image in images.items()}
        for size in sizes
    }
    bands = {size: _bands(size, pixels_max_size, settings) for size in sizes}
    schedules = [(spec, spec.build()) for spec in specs]
    shifted = _shifted_schedules(specs, x0s, bands, batch_size) if shift_check else {}
    frames, entries = [], []
    for size in sizes:
        started = time.perf_counter()
        pixels = pixels_max_size is None or size <= pixels_max_size
        curves = _curves(x0s[size], schedules, shifted.get(size, {}), pixels, settings)
        for key, x0 in x0s[size].items():
            common = {"photo": key, "image_size": size, "batch_size": batch_size}
            frames += [
                _schedule_frame(
                    x0, spec, schedule, curves[key], index, bands[size], include_t0, common
                )
                for index, (spec, schedule) in enumerate(schedules)
            ]
        if shift_check:
            entries += _entries(size, schedules, shifted[size], curves, bands[size])
        logger.info(
            "closeness %dx%d (D=%d, n=%d, %d schedules, %d images, pixels reading %s): %.1f s",
            *(size, size, size * size, batch_size, len(schedules), len(images)),
            "yes" if pixels else "no",
            time.perf_counter() - started,
        )
    table = pd.concat(frames, ignore_index=True)
    # The first image's rows first, as the thesis figure and comparison read them.
    order = {key: index for index, key in enumerate(images)}
    table = table.sort_values("photo", key=lambda c: c.map(order), kind="stable")
    return ClosenessResult(table.reset_index(drop=True), pd.DataFrame(entries))


def closeness_outputs(options: Mapping) -> dict[str, pd.DataFrame]:
    """Every table of the closeness experiment from a config's ``analysis.closeness`` section
    (``schedules``, ``T``, ``photo``, ``image_sizes``, ``batch_size``, ``seed`` and optionally
    ``other_images``): ``table`` (:func:`closeness_table`), ``closest`` (the closest points with
    the measured and predicted band entry, :func:`~ddpm.analysis.predict_band_entry`),
    ``comparison`` (with the thesis's statements) and ``shifted`` (the shift check)."""
    from ..schedules import specs_from_config
    from .thesis import closest_points, compare_with_thesis

    keys = ("photo", "image_sizes", "batch_size", "seed", "other_images")
    result = closeness_study(
        specs_from_config(options["schedules"], [options["T"]]),
        **{key: options[key] for key in keys if key in options},
    )
    closest = closest_points(result.table)
    return {
        "table": result.table,
        "closest": predict_band_entry(result.table, closest),
        "comparison": compare_with_thesis(closest),
        "shifted": result.shifted,
    }


def _model_range(image: np.ndarray) -> np.ndarray:
    # to_model_range's mapping of uint8 to [-1, 1], in float64
    return image.astype(np.float64) / 127.5 - 1.0


def _check_arguments(batch_size: int, pixels_t_stride: int, image_sizes, other_images) -> None:
    if batch_size < 2:
        raise ConfigError(f"batch_size must be >= 2 to estimate a covariance, got {batch_size}")
    if pixels_t_stride < 1:
        raise ConfigError(f"pixels_t_stride must be >= 1, got {pixels_t_stride}")
    if not image_sizes:
        raise ConfigError("image_sizes is empty; give at least one size, e.g. [8, 16, 32, 64]")
    if any(int(size) < 2 for size in image_sizes):
        raise ConfigError(f"every image size must be >= 2, got {list(image_sizes)}")
    unknown = [image for image in other_images if image not in IMAGES]
    if unknown:
        raise ConfigError(f"unknown images {unknown} in other_images; choose from {IMAGES}")


def _bands(size: int, pixels_max_size, settings: _Settings) -> dict:
    """Mean, band and sd of each reading over pure-noise batches of this size."""
    pixels = pixels_max_size is None or size <= pixels_max_size
    runs = pure_noise_closeness(
        settings.batch_size, size * size, settings.noise_repeats, settings.seed, pixels=pixels
    )
    return {
        reading: noise_band(runs[f"closeness_{reading}"].to_numpy(), settings.band_percentiles)
        for reading in READINGS
    }


def _shifted_schedules(specs, x0s: dict, bands: dict, batch_size: int) -> dict:
    """size -> image -> [(rule, shift, spec, schedule)] for every schedule and rule."""
    smallest = min(x0s)
    level = {
        size: {
            key: float(
                logit(
                    crossing_alpha_bar(
                        "copies", bands[size]["copies"][2], x0.size, batch_size, _variance(x0)
                    )
                )
            )
            for key, x0 in images.items()
        }
        for size, images in x0s.items()
    }
    out: dict = {}
    for size, images in x0s.items():
        out[size] = {}
        for key in images:
            shifts = {
                "predicted": level[size][key] - level[smallest][key],
                "simple_diffusion": -2.0 * math.log(size / smallest),
            }
            out[size][key] = [
                (rule, shift, spec, _shifted(spec, shift).build())
                for rule, shift in shifts.items()
                if math.isfinite(shift)  # no level where the curve never meets the band
                for spec in specs
            ]
    return out


def _shifted(spec: ScheduleSpec, shift: float) -> ScheduleSpec:
    params = spec.parameters
    return ScheduleSpec(
        spec.label,
        spec.beta_schedule,
        spec.T,
        {**params, "shift": params.get("shift", 0.0) + shift},
    )


def _variance(x0: np.ndarray) -> float:
    centred = x0.reshape(-1) - x0.mean()
    return float(centred @ centred / (x0.size - 1))


def _padded(schedules, T_max: int) -> np.ndarray:
    """alpha_bar_0 = 1, ..., alpha_bar_T per schedule; NaN past a shorter schedule's T."""
    return np.stack(
        [np.concatenate([[1.0], s.alpha_bar, np.full(T_max - s.T, np.nan)]) for s in schedules]
    )


def _curves(x0s: dict, schedules: list, shifted: dict, pixels: bool, settings: _Settings) -> dict:
    """image -> (copies, pixels) per schedule (rows) at t = 0..T_max (columns), and
    ``(image, "shifted")`` -> copies of its shifted schedules; NaN where not computed. Every
    image and schedule sees the same noise draw at each t (see :func:`closeness_table`)."""
    T_max = max(spec.T for spec, _ in schedules)
    first, *others = x0s
    D = x0s[first].size
    alpha_bars = _padded([schedule for _, schedule in schedules], T_max)
    extra = {
        key: _padded([entry[3] for entry in entries], T_max) for key, entries in shifted.items()
    }
    out = {
        key: (np.full(alpha_bars.shape, np.nan), np.full(alpha_bars.shape, np.nan)) for key in x0s
    }
    for key in shifted:
        out[(key, "shifted")] = np.full(extra[key].shape, np.nan)
    rng = np.random.default_rng([settings.seed, D, 0])
    steps = range(0 if settings.include_t0 else 1, T_max + 1)
    size = int(math.isqrt(D))
    for t in tqdm(steps, desc=f"closeness {size}x{size}", mininterval=10, leave=False):
        # t = 0 needs no noise (alpha_bar = 1); drawing only for t >= 1 keeps the
        # stream the same with and without t = 0.
        noise = (
            rng.standard_normal((settings.batch_size, D))
            if t >= 1
            else np.zeros((settings.batch_size, D))
        )
        valid = ~np.isnan(alpha_bars[:, t])
        with_pixels = pixels and (t <= 1 or t % settings.pixels_t_stride == 0)
        copies, pix = batch_closeness(x0s[first], noise, alpha_bars[valid, t], pixels=with_pixels)
        out[first][0][valid, t], out[first][1][valid, t] = copies, pix
        for key in others:
            # the pixels reading never sees the image: the first image's is every image's
            copies, _ = batch_closeness(x0s[key], noise, alpha_bars[valid, t], pixels=False)
            out[key][0][valid, t], out[key][1][valid, t] = copies, pix
        for key in shifted:
            more = ~np.isnan(extra[key][:, t])
            copies, _ = batch_closeness(x0s[key], noise, extra[key][more, t], pixels=False)
            out[(key, "shifted")][more, t] = copies
    return out


def _entries(size: int, schedules, shifted: dict, curves: dict, bands: dict) -> list:
    """The shift check's rows at one size: each schedule's band entry unshifted and shifted."""
    _, low, high, _ = bands["copies"]
    rows = []
    for key, entries in shifted.items():
        unshifted = [("none", 0.0, spec, schedule) for spec, schedule in schedules]
        values = [curves[key][0][index] for index in range(len(schedules))]
        values += list(curves[(key, "shifted")])
        for (rule, shift, spec, schedule), curve in zip(unshifted + entries, values, strict=True):
            t = np.arange(1, schedule.T + 1)
            t_enter = first_inside(t, curve[t], low, high)
            log_snr = schedule.log_snr[int(t_enter) - 1] if not math.isnan(t_enter) else math.nan
            rows.append(
                {
                    "photo": key,
                    "schedule": spec.label,
                    "beta_schedule": spec.beta_schedule,
                    "T": schedule.T,
                    "image_size": size,
                    "shift_rule": rule,
                    "shift": shift,
                    "t_enter_copies": t_enter,
                    "t_over_T": t_enter / schedule.T,
                    "log_snr_enter_copies": float(log_snr),
                }
            )
    return rows


def shift_spread(shifted: pd.DataFrame) -> pd.DataFrame:
    """Per (photo, schedule, shift rule): the band-entry t/T at each size and its spread over
    the sizes (largest minus smallest), the number the shift check is judged by."""
    rows = []
    for (photo, schedule, rule), part in shifted.groupby(
        ["photo", "schedule", "shift_rule"], sort=False
    ):
        part = part.sort_values("image_size")
        fractions = part["t_over_T"].to_numpy(float)
        rows.append(
            {
                "photo": photo,
                "schedule": schedule,
                "shift_rule": rule,
                **{
                    f"t_over_T_{int(s)}": f
                    for s, f in zip(part["image_size"], fractions, strict=True)
                },
                "spread_t_over_T": float(np.nanmax(fractions) - np.nanmin(fractions)),
            }
        )
    return pd.DataFrame(rows)


def _schedule_frame(
    x0: np.ndarray,
    spec: ScheduleSpec,
    schedule,
    curves: tuple[np.ndarray, np.ndarray],
    index: int,
    bands: dict[str, tuple[float, float, float, float]],
    include_t0: bool,
    common: dict,
) -> pd.DataFrame:
    """The table's rows of one schedule (row ``index`` of ``curves``, the copies and pixels
    readings) at one image size, with the exact counterparts."""
    copies, pix = curves[0][index], curves[1][index]
    t = np.arange(0 if include_t0 else 1, schedule.T + 1)
    second_moment = float(np.mean(x0**2))
    frame = {
        "photo": common["photo"],
        "schedule": spec.label,
        "beta_schedule": spec.beta_schedule,
        "T": schedule.T,
        "image_size": common["image_size"],
        "num_pixels": x0.size,
        "batch_size": common["batch_size"],
        "t": t,
        "alpha_bar": np.concatenate([[1.0], schedule.alpha_bar])[t],
        "log_snr": np.concatenate([[np.inf], schedule.log_snr])[t],
        "kl_bits_per_dim": np.concatenate(
            [[np.inf], schedule.kl_to_standard_normal(second_moment)]
        )[t],
        "closeness_copies": copies[t],
        "closeness_pixels": pix[t],
    }
    for reading, (mean, low, high, _) in bands.items():
        frame[f"noise_mean_{reading}"] = mean
        frame[f"noise_band_low_{reading}"] = low
        frame[f"noise_band_high_{reading}"] = high
    # New columns after the original ones: the thesis's columns keep their order.
    frame["pixel_variance"] = _variance(x0)
    for reading, (*_, sd) in bands.items():
        frame[f"noise_sd_{reading}"] = sd
    return pd.DataFrame(frame)
