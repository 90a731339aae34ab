"""Sample quality: IS, FID, KID and precision/recall through torch-fidelity.

Two feature extractors: torch-fidelity's Inception-v3 (the numbers papers report; its weights are a
file, see :func:`resolve_inception_weights`) and a small classifier trained on the dataset's own
labels (:func:`train_classifier`), registered with torch-fidelity so that the same metric code
runs on features that mean something for digits. Metric keys are prefixed with the extractor.

The names below are imported on first use (PEP 562): :mod:`.weights_files` is read while the
workflow is parsed, which must not import PyTorch or torch-fidelity.
"""

from __future__ import annotations

from ..lazy import lazy_exports

# Public name -> the submodule that defines it.
_EXPORTS = {
    "CLASSIFIER_EXTRACTOR_NAME": "classifier",
    "ClassifierFeatureExtractor": "classifier",
    "DomainClassifier": "classifier",
    "EXTRACTORS": "scoring",
    "INCEPTION_EXTRACTOR_NAME": "inception",
    "INCEPTION_MODES": "inception",
    "INCEPTION_WEIGHTS_FILENAME": "inception",
    "INCEPTION_WEIGHTS_URL": "inception",
    "METRIC_SUFFIXES": "scoring",
    "MetricsError": "common",
    "compute_metrics": "scoring",
    "load_classifier": "classifier",
    "metric_columns": "scoring",
    "read_classifier_config": "classifier",
    "read_metrics": "scoring",
    "real_floor": "floor",
    "reference_cache_name": "reference_cache",
    "register_classifier_extractor": "classifier",
    "resolve_inception_weights": "inception",
    "scoring_view": "common",
    "train_classifier": "classifier",
    "write_metrics": "scoring",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
