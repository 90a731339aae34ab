"""Denoising diffusion probabilistic models (Ho et al. 2020) and a study of noise schedules."""

from .diffusion import GaussianDiffusion, from_model_range, to_model_range
from .schedules import NoiseSchedule, ScheduleError, make_schedule

__version__ = "0.1.0"

__all__ = [
    "GaussianDiffusion",
    "NoiseSchedule",
    "ScheduleError",
    "from_model_range",
    "make_schedule",
    "to_model_range",
]
