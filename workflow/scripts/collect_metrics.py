import script_setup

script_setup.start(snakemake)

from ddpm.results import collect_runs  # noqa: E402

table = collect_runs(snakemake.input.metrics, snakemake.input.records, snakemake.input.train_logs)
table.to_csv(snakemake.output[0], index=False)
