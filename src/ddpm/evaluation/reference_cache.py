"""The reference cache's names, and checks of its files before torch-fidelity reads them.

A cache entry is found by its name alone (:func:`reference_cache_name`), so the name holds
everything that changes the features, including a digest of the extractor's weights.

torch-fidelity reads its cached features and statistics back with
``torch.load(..., weights_only=False)``, which runs whatever a pickle in the cache says. The
cache lives in the results folder, which people copy and hand on, so before each metric call
every cache file it could read is loaded here with ``weights_only=True`` (tensors, numpy arrays
and plain containers only): a file that carries anything else is refused before torch-fidelity
opens it, and nothing in it runs.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .. import ConfigError

__all__ = ["check_cache_key", "check_reference_cache", "file_sha256", "reference_cache_name"]


def _numpy_globals() -> list:
    """What a pickled numpy array needs: the array reconstructor, ndarray, dtypes."""
    multiarray = getattr(np, "_core", np.core).multiarray
    dtypes = {type(np.dtype(name)) for name in ("float32", "float64", "int64", "bool", "uint8")}
    return [multiarray._reconstruct, np.ndarray, np.dtype, *dtypes]


def check_reference_cache(cache_dir: str | Path, cache_name: str) -> list[Path]:
    """Load every cache file of ``cache_name`` weights-only; return them, or raise ConfigError."""
    files = sorted(Path(cache_dir).glob(f"{cache_name}*.pt"))
    for path in files:
        try:
            with torch.serialization.safe_globals(_numpy_globals()):
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # an unpickling error names the global it refused
            raise ConfigError(
                f"the reference cache file {path} holds more than tensors and arrays "
                f"({type(err).__name__}: {str(err).splitlines()[0]}); torch-fidelity would run "
                f"it when reading the cache. Nothing of it was run: delete {Path(cache_dir)} "
                "and run again to rebuild the cache"
            ) from err
    return files


def reference_cache_name(dataset: str, split: str, image_size: int, extractor: str, n: int) -> str:
    """Cache key for the reference features of ``n`` images of ``dataset``/``split`` at
    ``image_size`` seen by ``extractor``.

    torch-fidelity finds cached features by this name alone, so everything that changes them must
    be in it. :func:`compute_metrics` adds a digest of the extractor's weights file.
    """
    name = f"{dataset}-{split}-{int(image_size)}px-{extractor}-n{int(n)}"
    check_cache_key(name)
    return name


def check_cache_key(key: str) -> None:
    """Raise :class:`ConfigError` unless ``key`` can name files in the cache folder."""
    if not key or key.strip() != key or any(sep in key for sep in ("/", "\\", os.sep)):
        raise ConfigError(
            f"reference cache key {key!r} must be a non-empty file name without slashes or "
            "surrounding spaces; build it with reference_cache_name"
        )


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (remembered while the file's size and mtime are unchanged)."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
