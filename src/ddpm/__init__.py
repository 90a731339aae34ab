"""Denoising diffusion probabilistic models (Ho et al. 2020) and a study of noise schedules.

The public API is listed in the README ("The library"); each name has one import path, its
module's (``from ddpm.diffusion import GaussianDiffusion``). Importing this package imports
nothing else, so that the workflow's parse-time modules (:mod:`ddpm.workflow`) load without
PyTorch.

Errors: everything the user can fix (a setting, a file, a dataset, the machine) raises a
:class:`DDPMError`, whose message names the problem and the fix; the command line and the
workflow print it as one line. Any other exception is a bug and keeps its traceback.
"""

__version__ = "0.1.0"


class DDPMError(Exception):
    """A problem the user can fix; the message names it and how."""


class ConfigError(DDPMError, ValueError):
    """A setting or an argument is invalid: the message names the key, the value and what is
    allowed."""


class DeviceError(DDPMError, ValueError):
    """A device or a precision cannot be used on this machine; the message says why and what
    to use instead."""


class DataError(DDPMError):
    """A dataset, a photo or a prepared data file cannot be had or read."""


class ModelFileError(DDPMError, ValueError):
    """A model file or checkpoint is corrupt, incomplete, foreign or of an incompatible
    version."""


class TrainingError(DDPMError):
    """A training run cannot go on (its loss became non-finite or diverged, another process
    trains in its directory); what it wrote before stays."""
