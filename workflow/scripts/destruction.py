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
)
save_images_by_t(snakemake.output[0], destroyed)
