"""Unpacking downloaded archives so that a reader sees either nothing or the complete result."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tarfile
import tempfile
import uuid
from pathlib import Path

from .. import DataError

__all__ = ["decompress_gzip_atomically", "extract_folder_atomically"]

logger = logging.getLogger(__name__)


def decompress_gzip_atomically(archive: Path, destination: Path) -> None:
    """Decompress ``archive`` to ``destination`` through a temporary file renamed into place."""
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    try:
        with gzip.open(archive, "rb") as source, open(temporary, "xb") as target:
            shutil.copyfileobj(source, target, length=1 << 20)
        os.replace(temporary, destination)
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"{archive} is not a readable gzip file ({error}); delete it and prepare again"
        ) from error
    finally:
        temporary.unlink(missing_ok=True)


def extract_folder_atomically(archive: Path, root: Path, folder: str) -> Path:
    """Extract ``archive`` (a tar file holding ``folder/``) to ``root/folder``.

    The archive is unpacked into a temporary directory under ``root`` and ``folder`` is then
    renamed into place, so ``root/folder`` is either absent or complete. An existing
    ``root/folder`` (which failed verification) is replaced.
    """
    target = root / folder
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".extracting", dir=root))
    logger.info("extracting %s -> %s", archive, target)
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DataError(
                f"{archive} is not a readable tar archive ({error}); delete it and prepare again"
            ) from error
        extracted = staging / folder
        if not extracted.is_dir():
            raise DataError(
                f"{archive} does not contain the directory {folder}/ that torchvision expects; "
                "delete it and fetch the original archive"
            )
        if target.exists():
            target.rename(staging / f"{folder}.replaced")
        try:
            extracted.rename(target)
        except OSError:
            # Another process preparing the same dataset finished first; keep its copy.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
