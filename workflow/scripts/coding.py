import script_setup

script_setup.start(snakemake)

from ddpm.coding import write_rate_distortion  # noqa: E402

write_rate_distortion(
    snakemake.input.models,
    snakemake.input.data,
    snakemake.output,
    device=script_setup.device(snakemake),
    **snakemake.params.options,
)
