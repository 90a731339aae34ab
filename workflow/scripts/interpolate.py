import script_setup

script_setup.start(snakemake)

from ddpm.interpolation import best_cell_interpolation  # noqa: E402

best_cell_interpolation(
    snakemake.input.metrics,
    snakemake.input.floor,
    snakemake.input.models,
    snakemake.input.data,
    snakemake.output[0],
    **snakemake.params.options,
)
