import script_setup

log = script_setup.start(snakemake)

from ddpm.analysis.forward import (  # noqa: E402
    iterative_destruction,
    load_photo,  # noqa: E402
    save_images_by_t,
)

options = snakemake.params.destruction
settings = {key: value for key, value in options.items() if key != "photo"}
destroyed = iterative_destruction(load_photo(options["photo"]), **settings)
save_images_by_t(snakemake.output[0], destroyed)
