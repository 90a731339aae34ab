"""Sample quality: IS, FID, KID and precision/recall through torch-fidelity.

Two feature extractors: torch-fidelity's Inception-v3 (the numbers papers report; its weights are a
file, see :func:`resolve_inception_weights`) and a small classifier trained on the dataset's own
labels (:func:`train_classifier`), registered with torch-fidelity so that the same metric code
runs on features that mean something for digits. Metric keys are prefixed with the extractor.
"""

from .classifier import (
    CLASSIFIER_EXTRACTOR_NAME,
    ClassifierFeatureExtractor,
    DomainClassifier,
    load_classifier,
    read_classifier_config,
    register_classifier_extractor,
    train_classifier,
)
from .common import MetricsError
from .inception import (
    INCEPTION_EXTRACTOR_NAME,
    INCEPTION_MODES,
    INCEPTION_WEIGHTS_FILENAME,
    INCEPTION_WEIGHTS_URL,
    download_file,
    resolve_inception_weights,
)
from .scoring import (
    EXTRACTORS,
    METRIC_SUFFIXES,
    compute_metrics,
    file_sha256,
    metric_columns,
    read_metrics,
    real_floor,
    reference_cache_name,
    write_metrics,
)

__all__ = [
    "CLASSIFIER_EXTRACTOR_NAME",
    "EXTRACTORS",
    "INCEPTION_EXTRACTOR_NAME",
    "INCEPTION_MODES",
    "INCEPTION_WEIGHTS_FILENAME",
    "INCEPTION_WEIGHTS_URL",
    "METRIC_SUFFIXES",
    "ClassifierFeatureExtractor",
    "DomainClassifier",
    "MetricsError",
    "compute_metrics",
    "download_file",
    "file_sha256",
    "load_classifier",
    "metric_columns",
    "read_classifier_config",
    "read_metrics",
    "real_floor",
    "reference_cache_name",
    "register_classifier_extractor",
    "resolve_inception_weights",
    "train_classifier",
    "write_metrics",
]
