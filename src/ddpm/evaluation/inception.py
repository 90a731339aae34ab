"""Where torch-fidelity's Inception-v3 weights come from.

torch-fidelity downloads its Inception-v3 weights from GitHub the first time it is used, which fails
on an offline machine or a cluster node without internet. Here the weights are a plain file: found
where the configuration says, or downloaded once into the resources folder (on a machine with
internet, e.g. by a local workflow rule), then handed to torch-fidelity with
``feature_extractor_weights_path``.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

from .common import MetricsError, atomic_write

__all__ = [
    "INCEPTION_EXTRACTOR_NAME",
    "INCEPTION_MODES",
    "INCEPTION_WEIGHTS_FILENAME",
    "INCEPTION_WEIGHTS_URL",
    "download_file",
    "resolve_inception_weights",
]

logger = logging.getLogger(__name__)

INCEPTION_EXTRACTOR_NAME = "inception-v3-compat"
"""torch-fidelity's name for the Inception-v3 network that reproduces the TensorFlow FID/IS."""

INCEPTION_WEIGHTS_URL = URL_INCEPTION_V3
"""Where torch-fidelity itself fetches the weights (converted from the 2015-12-05 TF release)."""

INCEPTION_WEIGHTS_FILENAME = Path(urlparse(URL_INCEPTION_V3).path).name

INCEPTION_MODES = ("auto", "required", "off")


def _weights_filename(url: str | None) -> str:
    name = Path(urlparse(url).path).name if url else ""
    return name or INCEPTION_WEIGHTS_FILENAME


def _check_inception_state_dict(path: Path) -> None:
    """Fail unless ``path`` holds a state dict with Inception's classifier layer: a download that
    returned an error page must not be saved as weights."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise MetricsError(f"the downloaded file is not a PyTorch state dict ({error})") from error
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise MetricsError("the downloaded file is not an Inception-v3 state dict (no 'fc.weight')")


def download_file(
    url: str,
    destination: str | Path,
    *,
    timeout_s: float = 60.0,
    check=None,
    log_every_s: float = 10.0,
) -> Path:
    """Download ``url`` to ``destination`` atomically: the data go to a temporary file next to it,
    which is renamed only when complete (and, if given, ``check(tmp_path)`` raised nothing).

    Args:
        url: http(s) or file URL.
        destination: the final path; its folder is created.
        timeout_s: socket timeout for connecting and for each read.
        check: optional callable that raises if the downloaded file is unusable.
        log_every_s: seconds between progress log lines.
    """
    destination = Path(destination)

    def fetch(tmp: Path) -> None:
        started = last_log = time.monotonic()
        with urllib.request.urlopen(url, timeout=timeout_s) as response, tmp.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            received = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                received += len(chunk)
                if time.monotonic() - last_log >= log_every_s:
                    last_log = time.monotonic()
                    logger.info(
                        "downloading %s: %.1f of %s MB (%.0f s)",
                        url,
                        received / 1e6,
                        f"{total / 1e6:.1f}" if total else "?",
                        last_log - started,
                    )
        if total and received != total:
            raise OSError(f"download incomplete: {received} of {total} bytes")
        if check is not None:
            check(tmp)

    atomic_write(destination, fetch)
    return destination


def resolve_inception_weights(
    mode: str,
    weights_path: str | Path | None,
    url: str | None,
    resources_dir: str | Path,
    *,
    timeout_s: float = 60.0,
) -> tuple[Path | None, str]:
    """Find (or fetch) the Inception-v3 weights for ``compute_metrics(extractor="inception")``.

    Args:
        mode: ``"auto"``: use the weights if present, else try one download of ``url``; if neither
            works, return ``None`` and the reason (Inception metrics are then skipped).
            ``"required"``: the same, but raise :class:`MetricsError` instead of returning ``None``.
            ``"off"``: do not look; return ``(None, "disabled in config")``.
        weights_path: a file the user provides; used when it exists.
        url: where to download the weights from (``INCEPTION_WEIGHTS_URL``); ``None`` never
            downloads.
        resources_dir: where downloaded weights are kept (and looked for), under the URL's file name.
        timeout_s: network timeout of the download.

    Returns:
        ``(path, reason)``: the weights file (or ``None``) and a sentence saying where it came from
        or why there is none.
    """
    if mode not in INCEPTION_MODES:
        raise MetricsError(f"Inception mode must be one of {INCEPTION_MODES}, got {mode!r}")
    if mode == "off":
        return None, "disabled in config"

    downloaded = Path(resources_dir) / _weights_filename(url)
    for candidate in (Path(weights_path) if weights_path else None, downloaded):
        if candidate is not None and candidate.is_file():
            return candidate, f"found at {candidate}"

    if url:
        logger.info("Inception weights not found; downloading %s to %s", url, downloaded)
        try:
            download_file(url, downloaded, timeout_s=timeout_s, check=_check_inception_state_dict)
            return downloaded, f"downloaded from {url} to {downloaded}"
        except Exception as error:  # network, HTTP, disk or content errors all mean "not available"
            failure = f"download from {url} failed: {error}"
    else:
        failure = "no download URL configured"
    missing = f"; {weights_path} does not exist" if weights_path else ""
    reason = (
        f"Inception weights not available offline: put {downloaded.name} at {downloaded} or set "
        f"scoring.inception.weights_path ({failure}{missing})"
    )
    if mode == "required":
        raise MetricsError(reason)
    logger.warning(reason)
    return None, reason
