"""How fast the forward process turns an image into isotropic noise (thesis section 5.1).

- :mod:`.closeness`: the thesis's metric in both readings, its exact counterparts and the
  pure-noise band, tabulated over schedules, T, image sizes and t;
- :mod:`.thesis`: closest points to noise and the comparison with the thesis's statements;
- :mod:`.forward`: forward samples and the iterative destruction of a photo;
- :mod:`.specs`: schedule specifications from the study config, and the schedule table.
"""

from ..data import load_photo
from .closeness import (
    batch_closeness,
    closeness_copies,
    closeness_pixels,
    closeness_table,
    pure_noise_closeness,
    square_grayscale,
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
    "THESIS_CLAIMS",
    "batch_closeness",
    "closeness_copies",
    "closeness_pixels",
    "closeness_table",
    "closest_points",
    "compare_with_thesis",
    "explain_closeness_readings",
    "forward_samples",
    "iterative_destruction",
    "load_T",
    "load_images_by_t",
    "load_photo",
    "pure_noise_closeness",
    "save_images_by_t",
    "schedule_table",
    "specs_from_config",
    "square_grayscale",
    "unique_specs",
]
