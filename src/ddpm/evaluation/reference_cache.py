"""Checks of torch-fidelity's reference cache before torch-fidelity reads it.

torch-fidelity reads its cached features and statistics back with
``torch.load(..., weights_only=False)``, which runs whatever a pickle in the cache says. The
cache lives in the results folder, which people copy and hand on, so before each metric call
every cache file it could read is loaded here with ``weights_only=True`` (tensors, numpy arrays
and plain containers only): a file that carries anything else is refused before torch-fidelity
opens it, and nothing in it runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .common import MetricsError

__all__ = ["check_reference_cache"]


def _numpy_globals() -> list:
    """What a pickled numpy array needs: the array reconstructor, ndarray, dtypes."""
    multiarray = getattr(np, "_core", np.core).multiarray
    dtypes = {type(np.dtype(name)) for name in ("float32", "float64", "int64", "bool", "uint8")}
    return [multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]


def check_reference_cache(cache_dir: str | Path, cache_name: str) -> list[Path]:
    """Load every cache file of ``cache_name`` weights-only; return them, or raise MetricsError."""
    files = sorted(Path(cache_dir).glob(f"{cache_name}*.pt"))
    for path in files:
        try:
            with torch.serialization.safe_globals(_numpy_globals()):
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # an unpickling error names the global it refused
            raise MetricsError(
                f"the reference cache file {path} holds more than tensors and arrays "
                f"({type(err).__name__}: {str(err).splitlines()[0]}); torch-fidelity would run "
                f"it when reading the cache. Nothing of it was run: delete {Path(cache_dir)} "
                "and run again to rebuild the cache"
            ) from err
    return files
