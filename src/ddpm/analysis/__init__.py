"""How fast the forward process turns an image into isotropic noise (thesis section 5.1).

- :mod:`.closeness`: the thesis's metric in both readings, its exact counterparts and the
  pure-noise band;
- :mod:`.closeness_study`: both readings tabulated over schedules, T, images, image sizes and
  t, and the check of resolution-shifted schedules;
- :mod:`.band_entry`: the band entry in log-SNR terms, its prediction from the image, D, n and
  the band, and whether the schedules collapse onto one log-SNR;
- :mod:`.thesis`: closest points to noise and the comparison with the thesis's statements;
- :mod:`.forward`: forward samples and the iterative destruction of a photo;
- :mod:`.specs`: schedule specifications from the study config, and the schedule table.
"""

from ..data import load_photo
from .band_entry import (
    collapse_verdicts,
    crossing_alpha_bar,
    expected_closeness,
    first_passage,
    predict_band_entry,
)
from .closeness import (
    batch_closeness,
    closeness_copies,
    closeness_pixels,
    pure_noise_closeness,
    square_grayscale,
)
from .closeness_study import (
    IMAGES,
    SHIFT_RULES,
    ClosenessResult,
    closeness_image,
    closeness_outputs,
    closeness_study,
    closeness_table,
    shift_spread,
)
from .forward import (
    DEFAULT_DESTRUCTION_KEEP,
    forward_samples,
    iterative_destruction,
    load_images_by_t,
    load_T,
    save_images_by_t,
)
from .specs import schedule_table, specs_from_config, unique_specs
from .thesis import THESIS_CLAIMS, closest_points, compare_with_thesis, explain_closeness_readings

__all__ = [
    "DEFAULT_DESTRUCTION_KEEP",
    "IMAGES",
    "SHIFT_RULES",
    "THESIS_CLAIMS",
    "ClosenessResult",
    "batch_closeness",
    "closeness_copies",
    "closeness_image",
    "closeness_outputs",
    "closeness_pixels",
    "closeness_study",
    "closeness_table",
    "closest_points",
    "collapse_verdicts",
    "compare_with_thesis",
    "crossing_alpha_bar",
    "expected_closeness",
    "explain_closeness_readings",
    "first_passage",
    "forward_samples",
    "iterative_destruction",
    "load_T",
    "load_images_by_t",
    "load_photo",
    "predict_band_entry",
    "pure_noise_closeness",
    "save_images_by_t",
    "schedule_table",
    "shift_spread",
    "specs_from_config",
    "square_grayscale",
    "unique_specs",
]
