import script_setup

script_setup.start(snakemake)

from ddpm.schedules import schedule_table, specs_from_config  # noqa: E402

specs = specs_from_config(snakemake.params.schedules, snakemake.params.T)
schedule_table(specs).to_csv(snakemake.output[0], index=False)
