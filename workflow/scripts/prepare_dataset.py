import script_setup

log = script_setup.start(snakemake)

from ddpm.data import prepare_dataset  # noqa: E402

options = snakemake.params.options
meta = prepare_dataset(
    # A variant (dataset_options.<name>.variant_of) is made from the dataset it names.
    options.get("variant_of", snakemake.wildcards.dataset),
    snakemake.output[0],
    options["image_size"],
    root=snakemake.params.root,
    base_url=options.get("base_url"),
    resize_mode=options.get("resize_mode", "resize"),
    checksums=options.get("checksums"),
)
log.info("prepared %s", meta)
