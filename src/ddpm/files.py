"""Atomic file writes: a reader, a retry or a job killed half way never sees a partial file.

A write that fails because the disk is full or read-only raises :class:`StorageError`,
which names the file, the cause and what to do, instead of the low-level error of
whatever serialiser was writing.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from . import DDPMError

__all__ = [
    "StorageError",
    "atomic_save_npz",
    "atomic_write",
    "atomic_write_text",
    "check_writable",
    "remove_stale_temporaries",
    "storage_error",
]

# Why a write cannot succeed until someone acts, and what they should do.
_STORAGE_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission is denied",
    errno.EPERM: "permission is denied",
}
_TEMPORARY_SUFFIX = ".tmp"
_PROBE_NAME = "write-probe"


class StorageError(DDPMError, OSError):
    """A file cannot be written (disk full, read-only, no permission); the message says which."""

    def __str__(self) -> str:
        return str(self.strerror)  # the whole message, which already names the file


def storage_error(path: Path, err: OSError) -> StorageError | None:
    """The :class:`StorageError` for ``err`` while writing ``path``, or None if it is another kind."""
    cause = _STORAGE_ERRORS.get(err.errno)
    if cause is None:
        return None
    fix = (
        "make room (or point the run at another disk)"
        if err.errno in (errno.ENOSPC, errno.EDQUOT)
        else "use a directory this process may write to"
    )
    return StorageError(
        err.errno,
        f"cannot write {'into ' if path.is_dir() else ''}{path}: {cause} ({err.strerror or err}); {fix}",
        str(path),
    )


def _storage_cause(path: Path, err: BaseException) -> StorageError | None:
    """The :class:`StorageError` behind ``err``, or None.

    torch.save on a full disk raises OSError(ENOSPC) inside its zip writer, whose clean-up
    then raises a RuntimeError ("unexpected pos") that hides it; so the whole chain of
    causes is searched.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, StorageError):
            return err
        if isinstance(err, OSError) and (found := storage_error(path, err)) is not None:
            return found
        err = err.__cause__ or err.__context__
    return None


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, flush it to disk, rename it
    over ``path``. On any error the temporary file is removed and ``path`` is untouched.

    Raises:
        StorageError: the disk is full or the directory cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=_TEMPORARY_SUFFIX
        )
    except OSError as err:
        raise (storage_error(path, err) or err) from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp makes the file private to its owner; give it the permissions of a normal file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except Exception as err:
        storage = _storage_cause(path, err)
        if storage is None or storage is err:
            raise
        raise storage from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_save_npz(path: str | os.PathLike, *, compressed: bool = True, **arrays) -> Path:
    """``np.savez[_compressed]`` to exactly ``path`` (numpy would append .npz to a bare name)."""
    save = np.savez_compressed if compressed else np.savez

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            save(handle, **arrays)

    return atomic_write(path, write)


def remove_stale_temporaries(directory: Path, target_names: Iterable[str]) -> list[Path]:
    """Delete what :func:`atomic_write` left in ``directory`` when killed while writing.

    ``target_names`` are regular expressions for the names of the files whose temporaries
    may go (a temporary of ``x`` is named ``.x.<random>.tmp``, see ``tempfile.mkstemp``).
    Call this only while holding the lock that every writer of those files holds, so that
    no live writer's temporary is removed under it. Returns the removed paths.
    """
    if not directory.is_dir():
        return []
    names = "|".join(f"(?:{name})" for name in [*target_names, re.escape(_PROBE_NAME)])
    temporary = re.compile(rf"^\.(?:{names})\.[A-Za-z0-9_]+{re.escape(_TEMPORARY_SUFFIX)}$")
    removed = []
    for entry in sorted(directory.iterdir()):
        if temporary.match(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def check_writable(directory: Path) -> None:
    """Create and remove a probe file in ``directory`` (created if missing).

    Asking about permissions (``os.access``) is not enough: root passes it where the
    permission bits say no, and a full disk passes it too. Raises :class:`StorageError`.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = _create_probe(directory)
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise (storage_error(directory, err) or err) from err


def _create_probe(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=directory, prefix=f".{_PROBE_NAME}.", suffix=_TEMPORARY_SUFFIX)
