import script_setup

log = script_setup.start(snakemake)

from ddpm.data.prepare import prepare_dataset  # noqa: E402

meta = prepare_dataset(
    snakemake.params.source,
    snakemake.output[0],
    **snakemake.params.options,
)
log.info("prepared %s", meta)
