"""The errors of the data package; each message says what went wrong and what to do."""

from __future__ import annotations

from ..dataset_registry import DatasetError

__all__ = ["DatasetChecksumError", "DatasetError", "DatasetNotPrepared", "DatasetUnavailable"]


class DatasetUnavailable(DatasetError):
    """A file of a dataset could not be fetched (no network, server down, download disabled)."""


class DatasetChecksumError(DatasetError):
    """A downloaded or local file does not match its expected checksum."""


class DatasetNotPrepared(DatasetError, FileNotFoundError):
    """The prepared ``.npz`` file does not exist yet."""
