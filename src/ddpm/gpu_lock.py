"""One GPU per process: a process that asks for ``"cuda"`` claims a GPU no other ddpm process holds.

:func:`ddpm.runtime.resolve_device` calls :func:`claim_gpu` for a plain ``"cuda"``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import IO

import torch

__all__ = ["MAX_JOBS_PER_GPU", "claim_gpu", "gpu_lock_dir"]

logger = logging.getLogger(__name__)

# Snakemake bounds how many GPU jobs run at once (--resources gpu=N) but assigns no GPU ids, so
# each process claims one by an exclusive lock on a per-GPU file, held until the process exits
# (the OS drops the lock however the process ends). Lock "slot" k of a GPU is its k-th sharer:
# all slots 0 are tried first, then all slots 1..., so an over-full machine shares evenly.
MAX_JOBS_PER_GPU = 16
_claimed: dict[int, tuple[int, IO]] = {}  # GPU count -> (index, open lock file) of this process


def gpu_lock_dir() -> Path:
    """``$DDPM_GPU_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/ddpm-gpu-locks``, else a per-user /tmp dir."""
    if os.environ.get("DDPM_GPU_LOCK_DIR"):
        return Path(os.environ["DDPM_GPU_LOCK_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "ddpm-gpu-locks"
    return Path(tempfile.gettempdir()) / f"ddpm-gpu-locks-{os.getuid()}"


def _gpu_key(index: int) -> str:
    """A name of GPU ``index`` that is the same in every process, whatever it sees as index 0."""
    try:
        key = str(torch.cuda.get_device_properties(index).uuid)
    except Exception:  # no UUID from this build or driver: name it as the process sees it
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        key = visible[index].strip() if index < len(visible) and visible[index].strip() else index
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"gpu-{key}")


def _try_lock(path: Path) -> IO | None:
    import fcntl  # POSIX only; claim_gpu falls back to GPU 0 without it

    handle = open(path, "a+")  # noqa: SIM115 - kept open: closing it would release the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")  # who holds it, for a person looking at the directory
    handle.flush()
    return handle


def _first_free_lock(lock_dir: Path, count: int) -> tuple[int, int, IO]:
    """(slot, GPU index, lock file) of the first free lock, all slots 0 first; OSError if none."""
    keys = [_gpu_key(index) for index in range(count)]
    for slot, (index, key) in itertools.product(range(MAX_JOBS_PER_GPU), enumerate(keys)):
        handle = _try_lock(lock_dir / f"{key}.{slot}.lock")
        if handle is not None:
            return slot, index, handle
    raise OSError(f"all {MAX_JOBS_PER_GPU} locks of every GPU are taken")


def claim_gpu(count: int, lock_dir: Path | None = None) -> int:
    """The index of a GPU for this process among ``count`` visible ones, kept until it exits.

    One visible GPU (e.g. the scheduler narrowed ``CUDA_VISIBLE_DEVICES``) is used as is;
    of several, the first no other process holds, else the least shared one, with a warning.
    """
    if count <= 1:
        return 0
    if count not in _claimed:
        lock_dir = lock_dir or gpu_lock_dir()
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            slot, index, handle = _first_free_lock(lock_dir, count)
        except (ImportError, OSError) as err:
            logger.warning("cannot lock a GPU in %s (%s); using GPU 0", lock_dir, err)
            return 0
        if slot:
            logger.warning(
                "all %d GPUs are in use by other ddpm processes; GPU %d now runs %d jobs "
                "(give Snakemake --resources gpu=N with N at most the number of GPUs)",
                *(count, index, slot + 1),
            )
        logger.info("using GPU %d of %d (lock %s)", index, count, handle.name)
        _claimed[count] = (index, handle)
    return _claimed[count][0]
