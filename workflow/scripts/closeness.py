import script_setup

log = script_setup.start(snakemake)

from ddpm.analysis.closeness_study import closeness_outputs  # noqa: E402

outputs = closeness_outputs(snakemake.params.closeness)
for name, table in outputs.items():
    table.to_csv(snakemake.output[name], index=False)
log.info("closest points:\n%s", outputs["closest"].to_string())
