"""Denoising diffusion probabilistic models (Ho et al. 2020) and a study of noise schedules.

The names below are imported on first use (PEP 562), so that importing a light submodule
such as :mod:`ddpm.config_check` does not import PyTorch.
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

# Public name -> the submodule that defines it.
_EXPORTS = {
    "GaussianDiffusion": "diffusion",
    "from_model_range": "diffusion",
    "to_model_range": "diffusion",
    "NoiseSchedule": "schedules",
    "RunSpec": "spec",
    "ScheduleSpec": "spec",
    "ScheduleError": "beta_formulas",
    "make_schedule": "schedules",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
