import script_setup

log = script_setup.start(snakemake)

from ddpm.analysis.forward import iterative_destruction, save_images_by_t  # noqa: E402
from ddpm.data.photos import load_photo  # noqa: E402

options = snakemake.params.destruction
settings = {key: value for key, value in options.items() if key != "photo"}
destroyed = iterative_destruction(load_photo(options["photo"]), **settings)
save_images_by_t(snakemake.output[0], destroyed)
