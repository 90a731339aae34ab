import script_setup

script_setup.start(snakemake)

from ddpm.analysis import schedule_table  # noqa: E402

specs = [
    (label, definition["beta_schedule"], T, definition.get("params", {}))
    for label, definition in snakemake.params.schedules.items()
    for T in snakemake.params.T
]
schedule_table(specs).to_csv(snakemake.output[0], index=False)
