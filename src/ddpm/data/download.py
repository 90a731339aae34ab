"""One verified, atomic downloader, used for the datasets and for the Inception-v3 weights.

:func:`download_verified` fetches a URL (``https://``, ``http://`` or ``file://``) to a temporary
file next to its destination, checks it (md5, SHA-256 or a prefix of it, and any further check
the caller gives) and only then renames it into place: a failed, corrupt or interrupted download
never leaves a file where a good one is expected. Transient failures (timeouts, dropped
connections, truncated bodies, HTTP 429 and 5xx) are retried; permanent ones (HTTP 4xx, a
refused connection, an unknown host) and wrong checksums are not, so an offline machine fails
at once. :func:`ensure_local_copy` adds what a dataset needs: reuse of a verified local file,
several URLs tried in order, and instructions for copying the files by hand when offline.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .. import ConfigError, DataError, DDPMError
from ..files import atomic_write

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "DatasetChecksumError",
    "DatasetUnavailable",
    "DownloadFailed",
    "RemoteFile",
    "download_verified",
    "ensure_local_copy",
    "by_hand_instructions",
    "progress_bar",
    "file_digest",
    "join_url",
]

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0
# The User-Agent torchvision sends; some dataset servers refuse urllib's default one.
_USER_AGENT = "pytorch/vision"
# HTTP statuses that say "try again later" rather than "this will never work".
_TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})


class DatasetUnavailable(DataError):
    """A file of a dataset could not be fetched (no network, server down, download disabled)."""


class DatasetChecksumError(DataError):
    """A downloaded or local file does not match its expected checksum."""


class DownloadFailed(DDPMError):
    """A URL could not be read, after retrying where retrying could help.

    ``url`` is the URL and ``reason`` what went wrong, for callers that list several attempts.
    """

    def __init__(self, url: str, reason: str):
        super().__init__(f"could not download {url}: {reason}")
        self.url, self.reason = url, reason


class _TransientError(Exception):
    """A failure that another attempt may not have (timeout, reset, truncated body, 5xx)."""


def join_url(base: str, filename: str) -> str:
    return base.rstrip("/") + "/" + filename


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file's bytes (``"md5"`` or ``"sha256"``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download_verified(
    url: str,
    destination: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    check: Callable[[Path], None] | None = None,
    attempts: int = 3,
    retry_wait_s: float = 2.0,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Fetch ``url`` to ``destination`` atomically, keeping it only if it verifies.

    Args:
        url: ``https://``, ``http://`` or ``file://`` URL.
        destination: the final path (its folder is created); replaced if it exists.
        md5: the expected md5 hex digest, or ``None``.
        sha256: the expected SHA-256 hex digest or a prefix of it (torch.hub file names carry
            one), or ``None``.
        check: called with the temporary file after the checksums; raising rejects it.
        attempts: tries in all for a transient failure; the wait doubles after each one.
        retry_wait_s: seconds before the second try.
        timeout_s: socket timeout for connecting and for each read.

    Raises:
        DownloadFailed: the URL could not be read (the last error is in ``reason``).
        DatasetChecksumError: the bytes do not match ``md5`` or ``sha256``. Nothing is kept.
    """
    destination = Path(destination)
    if attempts < 1:
        raise ConfigError(f"attempts must be at least 1, got {attempts}")
    if sha256 is not None and not sha256:
        raise ConfigError("sha256 must be a hex digest or a prefix of one, got an empty string")

    def fetch_and_verify(temporary: Path) -> None:
        _fetch_with_retries(url, temporary, attempts, retry_wait_s, timeout_s, destination.name)
        _verify(url, temporary, md5, sha256)
        if check is not None:
            check(temporary)

    logger.info("downloading %s -> %s", url, destination)
    atomic_write(destination, fetch_and_verify)
    logger.info("verified %s", destination.name)
    return destination


class _LoggedProgress:
    """Progress as a log line every ``every_s`` seconds (for log files, where a bar's carriage
    returns turn into one endless line)."""

    def __init__(self, total: int | None, label: str, unit: str, every_s: float):
        self.total, self.label, self.unit, self.every_s = total, label, unit, every_s
        self.done, self.last = 0, time.monotonic()

    def update(self, amount: int) -> None:
        self.done += amount
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            logger.info("%s: %s", self.label, self._figures())

    def _figures(self) -> str:
        scale, name = (2**20, "MB") if self.unit == "B" else (1, self.unit)
        done = f"{self.done / scale:.1f}" if scale > 1 else f"{self.done}"
        if not self.total:
            return f"{done} {name}"
        total = f"{self.total / scale:.1f}" if scale > 1 else f"{self.total}"
        return f"{done} of {total} {name} ({100 * self.done / self.total:.0f} %)"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            logger.info("%s: done, %s", self.label, self._figures())


def progress_bar(total: int | None, label: str, unit: str = "it", every_s: float = 30.0):
    """A tqdm bar on a terminal, a log line every ``every_s`` seconds otherwise (a log file)."""
    if sys.stderr.isatty():
        scaled = dict(unit_scale=True, unit_divisor=1024) if unit == "B" else {}
        return tqdm(total=total, desc=label, unit=unit, mininterval=1, leave=False, **scaled)
    return _LoggedProgress(total, label, unit, every_s)


def _fetch_with_retries(url, temporary, attempts, retry_wait_s, timeout_s, label) -> None:
    for attempt in range(1, attempts + 1):
        try:
            _fetch(url, temporary, timeout_s, label)
            return
        except _TransientError as error:
            if attempt == attempts:
                suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
                raise DownloadFailed(url, f"{error}{suffix}") from error.__cause__
            wait = retry_wait_s * 2 ** (attempt - 1)
            logger.warning("%s: %s; trying again in %.0f s", url, error, wait)
            time.sleep(wait)


def _fetch(url: str, temporary: Path, timeout_s: float, label: str) -> None:
    """One attempt; raises :class:`_TransientError` or :class:`DownloadFailed`."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with (
            urllib.request.urlopen(request, timeout=timeout_s) as response,
            open(temporary, "wb") as handle,
        ):
            value = response.headers.get("Content-Length")
            expected = int(value) if value and value.isdigit() else None
            received = 0
            with progress_bar(expected, label, unit="B") as progress:
                while chunk := response.read(1 << 20):
                    handle.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        if expected is not None and received != expected:
            raise _TransientError(f"incomplete download: {received} of {expected} bytes")
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        # URLError covers refused connections, unknown hosts and HTTP errors (404);
        # OSError covers timeouts and resets; HTTPException covers truncated bodies.
        reason = f"{type(error).__name__}: {error}"
        if _is_transient(error):
            raise _TransientError(reason) from error
        raise DownloadFailed(url, reason) from error


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code in _TRANSIENT_HTTP
    if isinstance(error, urllib.error.URLError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    return isinstance(
        error,
        TimeoutError | ConnectionResetError | ConnectionAbortedError | http.client.HTTPException,
    )


def _verify(url: str, path: Path, md5: str | None, sha256: str | None) -> None:
    if md5 is not None:
        actual = file_digest(path, "md5")
        if actual != md5:
            raise DatasetChecksumError(
                f"{url} served a file whose md5 is {actual}, expected {md5}: the download is "
                "corrupt or the server serves a different file. Nothing was kept."
            )
    if sha256 is not None:
        actual = file_digest(path, "sha256")
        if not actual.startswith(sha256.lower()):
            shown = sha256 if len(sha256) == len(actual) else f"{sha256}..."
            raise DatasetChecksumError(
                f"{url} served a file whose SHA-256 is {actual}, expected {shown}: the download "
                "is corrupt or the server serves a different file. Nothing was kept."
            )


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its name (on the server and on disk), md5, and URLs to try in order."""

    filename: str
    md5: str | None
    urls: tuple[str, ...]


def ensure_local_copy(
    remote: RemoteFile,
    directory: Path,
    *,
    dataset: str,
    download: bool,
    all_files: Sequence[RemoteFile],
) -> Path:
    """The verified copy of ``remote`` in ``directory``: reused if its md5 matches, else
    fetched from its URLs in turn. Errors list every attempt and how to proceed offline."""
    destination = directory / remote.filename
    if destination.is_file():
        if remote.md5 is None or file_digest(destination, "md5") == remote.md5:
            logger.info("reusing %s", destination)
            return destination
        if not download:
            raise DatasetChecksumError(
                f"{destination} does not match its md5 {remote.md5} (truncated or a different "
                "file). Replace it with a good copy, or delete it and allow downloading."
            )
        logger.warning("%s does not match md5 %s; fetching it again", destination, remote.md5)
    offline = by_hand_instructions(dataset, directory, all_files)
    if not download:
        raise DatasetUnavailable(
            f"Dataset {dataset!r} needs {remote.filename}, which is not in {directory} and "
            f"downloading is disabled (download=False).\n{offline}"
        )
    attempts: list[str] = []
    corrupt: list[str] = []
    for url in remote.urls:
        try:
            return download_verified(url, destination, md5=remote.md5)
        except DownloadFailed as error:
            logger.warning("could not fetch %s: %s", url, error.reason)
            attempts.append(f"  {url}: {error.reason}")
        except DatasetChecksumError as error:
            logger.warning("%s", error)
            corrupt.append(f"  {error}")
    if corrupt:
        raise DatasetChecksumError(
            f"Dataset {dataset!r}: every copy of {remote.filename} that could be fetched had "
            "the wrong checksum:\n"
            + "\n".join(corrupt + attempts)
            + "\nIf a mirror serves a different build on purpose, pass its md5 through "
            f"`checksums` (config key `datasets.{dataset}.checksums`).\n{offline}"
        )
    raise DatasetUnavailable(
        f"Could not download {remote.filename} for dataset {dataset!r}. Tried:\n"
        + "\n".join(attempts)
        + f"\n{offline}"
    )


def by_hand_instructions(dataset: str, directory: Path, files: Sequence[RemoteFile]) -> str:
    """How to provide ``files`` without network: where to copy them, or which mirror to set."""
    listing = "\n".join(
        f"  {remote.filename}"
        + (f"  (md5 {remote.md5})" if remote.md5 else "")
        + (f"  from {remote.urls[0]}" if remote.urls else "")
        for remote in files
    )
    return (
        f"Without network, copy these files by hand into {directory.resolve()} (the directory "
        f"torchvision expects under the dataset root); they are verified and reused:\n"
        f"{listing}\n"
        f"Or set base_url (config key `datasets.{dataset}.base_url`) to a mirror, or a "
        "file:// directory, that holds them under the same names."
    )
