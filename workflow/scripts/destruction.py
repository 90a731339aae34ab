import script_setup

log = script_setup.start(snakemake)

from ddpm.analysis import iterative_destruction, save_images_by_t  # noqa: E402
from ddpm.data import load_photo  # noqa: E402

options = snakemake.params.destruction
destroyed = iterative_destruction(
    load_photo(options["photo"]),
    T=options["T"],
    beta_start=options["beta_start"],
    beta_end=options["beta_end"],
    keep=sorted({round(options["T"] * f) for f in (0, 0.01, 0.02, 0.04, 0.1, 0.2, 0.3, 1.0)}),
)
save_images_by_t(snakemake.output[0], destroyed)
