"""Where torch-fidelity's Inception-v3 weights come from, and loading them without running code.

torch-fidelity downloads its Inception-v3 weights from GitHub the first time it is used, which fails
on an offline machine or a cluster node without internet. Here the weights are a plain file: found
where the configuration says (``scoring.inception.weights_path``) or where the offline message says
(``resources/inception/<file name>``), or downloaded once into ``resources/inception/downloaded/``
(on a machine with internet, e.g. by a local workflow rule), then handed to torch-fidelity.

A ``.pth`` file is a pickle, and torch-fidelity unpickles a weights file it is given with
``torch.load(..., weights_only=False)``, which runs whatever code the file carries. So the project
never hands torch-fidelity a file it did not write itself: :class:`VerifiedInceptionV3` (registered
with torch-fidelity as :data:`INCEPTION_EXTRACTOR_NAME`) reads the user's file with
``weights_only=True`` (tensors only; a file with code is refused before anything of it runs),
checks it, and gives torch-fidelity a fresh copy holding nothing but those tensors. Downloads are
checked against the SHA-256 prefix in the file name of torch-fidelity's URL (torch.hub's
convention), which torch-fidelity itself does not check.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch
from torch.hub import HASH_REGEX
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    FeatureExtractorInceptionV3,
)
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from .. import ConfigError, DDPMError
from ..data.download import DownloadFailed, download_verified, file_digest
from ..workflow.layout import (
    DOWNLOAD_SUBDIR,
    INCEPTION_WEIGHTS_FILENAME,
)
from ..workflow.layout import (
    provided_candidates as _provided_candidates,
)
from ..workflow.layout import (
    weights_filename as _weights_filename,
)

__all__ = [
    "INCEPTION_EXTRACTOR_NAME",
    "INCEPTION_MODES",
    "INCEPTION_SHA256_PREFIX",
    "INCEPTION_WEIGHTS_URL",
    "VerifiedInceptionV3",
    "load_inception_state_dict",
    "resolve_inception_weights",
]

logger = logging.getLogger(__name__)

INCEPTION_EXTRACTOR_NAME = "inception-v3-compat-verified"
"""The name under which :class:`VerifiedInceptionV3` is registered with torch-fidelity: its
``inception-v3-compat`` network (which reproduces the TensorFlow FID/IS), loaded safely."""

INCEPTION_WEIGHTS_URL = URL_INCEPTION_V3
"""Where torch-fidelity itself fetches the weights (converted from the 2015-12-05 TF release)."""


INCEPTION_MODES = ("auto", "required", "off")


def _hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix a torch.hub-style file name carries (``name-<hex>.pth``), if any."""
    match = HASH_REGEX.search(filename)
    return match.group(1) if match and match.group(1) else None


INCEPTION_SHA256_PREFIX = _hash_prefix(INCEPTION_WEIGHTS_FILENAME)
"""The start of the SHA-256 of torch-fidelity's published weights file, from its name."""


def _how_to_get_weights() -> str:
    return (
        f"use torch-fidelity's weights {INCEPTION_WEIGHTS_FILENAME} from {INCEPTION_WEIGHTS_URL} "
        f"(SHA-256 starting {INCEPTION_SHA256_PREFIX}), or save your own Inception-v3 weights as a "
        "plain state dict with torch.save(model.state_dict(), path)"
    )


def load_inception_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an Inception-v3 state dict without running any code the file may carry.

    Raises:
        ConfigError: the file is not a plain state dict of tensors (e.g. a pickle of other Python
            objects, whose loading could execute code: it is refused before any of it runs), or
            has no Inception classifier layer. The message says what to use instead.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(
            f"Inception weights {path} are not a plain PyTorch state dict of tensors, so they are "
            f"not loaded: unpickling the file could run code it carries, and nothing of it was run "
            f"(torch.load(weights_only=True) said: {str(error).splitlines()[0]}). "
            f"Replace the file: {_how_to_get_weights()}"
        ) from error
    plain = isinstance(state, dict) and all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    )
    if not plain or "fc.weight" not in state:
        raise ConfigError(
            f"Inception weights {path} are not an Inception-v3 state dict (expected a dict of "
            f"tensors with 'fc.weight'); {_how_to_get_weights()}"
        )
    return dict(state)


class VerifiedInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3 whose weights file is read with ``weights_only=True``.

    torch-fidelity's own class unpickles the file with ``weights_only=False``. This one reads the
    file safely, then hands its parent a copy it wrote itself, in a private temporary folder, that
    holds only the checked tensors: unpickling that copy cannot run foreign code. It never
    downloads: the weights come from :func:`resolve_inception_weights`.
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        if feature_extractor_weights_path is None:
            raise ConfigError(
                "the Inception extractor needs feature_extractor_weights_path (no download here); "
                "get the file with resolve_inception_weights"
            )
        state = load_inception_state_dict(feature_extractor_weights_path)
        with tempfile.TemporaryDirectory(prefix="ddpm-inception-") as private:
            tensors_only = Path(private) / "weights.pth"
            torch.save(state, tensors_only)
            del state
            super().__init__(
                name, features_list, feature_extractor_weights_path=str(tensors_only), **kwargs
            )


if INCEPTION_EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:  # a name registers once
    register_feature_extractor(INCEPTION_EXTRACTOR_NAME, VerifiedInceptionV3)


def _describe_found(path: Path, how: str) -> str:
    """``how`` plus whether ``path`` is torch-fidelity's published file (by its SHA-256 prefix)."""
    digest = file_digest(path, "sha256")
    if INCEPTION_SHA256_PREFIX and digest.startswith(INCEPTION_SHA256_PREFIX):
        return f"{how} (torch-fidelity's published weights, SHA-256 {digest[:16]}...)"
    logger.warning(
        "Inception weights %s are not torch-fidelity's published file (SHA-256 %s, expected %s...): "
        "the Inception metrics will not be comparable with published numbers",
        path,
        digest,
        INCEPTION_SHA256_PREFIX,
    )
    return f"{how} (not torch-fidelity's published weights: SHA-256 {digest[:16]}...)"


def resolve_inception_weights(
    resources_dir: str | Path,
    *,
    mode: str = "auto",
    weights_path: str | Path | None = None,
    url: str | None = INCEPTION_WEIGHTS_URL,
    timeout_s: float = 60.0,
) -> tuple[Path | None, str]:
    """Find (or fetch) the Inception-v3 weights for ``compute_metrics(extractor="inception")``.

    Args:
        mode: ``"auto"``: use the weights if present, else download ``url`` (a timeout or a
            dropped connection is retried, a refused one is not); if neither works, return
            ``None`` and the reason (Inception metrics are then skipped).
            ``"required"``: the same, but raise :class:`ConfigError` instead of returning ``None``.
            ``"off"``: do not look; return ``(None, "disabled in config")``.
        weights_path: a file the user provides; used when it exists.
        url: where to download the weights from (``INCEPTION_WEIGHTS_URL``); ``None`` never
            downloads.
        resources_dir: a user may put the weights here, under the URL's file name; downloads are
            kept in its ``downloaded/`` folder.
        timeout_s: network timeout of the download.

    Returns:
        ``(path, reason)``: the weights file (or ``None``) and a sentence saying where it came from
        or why there is none.

    Raises:
        ConfigError: a weights file is present but unusable (:func:`load_inception_state_dict`),
            in every mode but ``"off"``: a file the user put there is never skipped silently.
    """
    if mode not in INCEPTION_MODES:
        raise ConfigError(f"Inception mode must be one of {INCEPTION_MODES}, got {mode!r}")
    if mode == "off":
        return None, "disabled in config"

    provided = _provided_candidates(weights_path, url, resources_dir)
    downloaded = Path(resources_dir) / DOWNLOAD_SUBDIR / _weights_filename(url)
    for candidate in [*provided, downloaded]:
        if candidate.is_file():
            load_inception_state_dict(candidate)
            return candidate, _describe_found(candidate, f"found at {candidate}")

    failure = _download_weights(url, downloaded, timeout_s) if url else "no download URL configured"
    if failure is None:
        return downloaded, _describe_found(downloaded, f"downloaded from {url} to {downloaded}")
    drop_in = provided[-1]
    missing = f"; {weights_path} does not exist" if weights_path else ""
    reason = (
        f"Inception weights not available offline: put {drop_in.name} at {drop_in} or set "
        f"scoring.inception.weights_path ({failure}{missing})"
    )
    if mode == "required":
        raise ConfigError(reason)
    logger.warning(reason)
    return None, reason


def _download_weights(url: str, destination: Path, timeout_s: float) -> str | None:
    """Fetch the weights, keeping them only if they are a plain Inception state dict and match
    the SHA-256 prefix of the URL's file name (torch.hub's convention), when it carries one.

    Returns ``None`` on success, else why it failed: every failure the user can do something
    about (network, HTTP, disk, content: a :class:`~ddpm.DDPMError`) means "not available",
    which the caller reports with the way to proceed offline; anything else is a bug and
    propagates.
    """
    logger.info("Inception weights not found; downloading %s to %s", url, destination)
    try:
        download_verified(
            url,
            destination,
            sha256=_hash_prefix(_weights_filename(url)),
            check=load_inception_state_dict,
            timeout_s=timeout_s,
        )
    except DownloadFailed as error:
        return f"download from {url} failed: {error.reason}"
    except DDPMError as error:
        return f"download from {url} failed: {error}"
    return None
