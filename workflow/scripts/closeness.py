import script_setup

log = script_setup.start(snakemake)

from ddpm.analysis.closeness import closeness_table  # noqa: E402
from ddpm.analysis.specs import specs_from_config  # noqa: E402
from ddpm.analysis.thesis import closest_points, compare_with_thesis  # noqa: E402

options = snakemake.params.closeness
table = closeness_table(
    specs_from_config(options["schedules"], [options["T"]]),
    photo=options["photo"],
    image_sizes=options["image_sizes"],
    batch_size=options["batch_size"],
    seed=options["seed"],
)
table.to_csv(snakemake.output.table, index=False)
closest = closest_points(table)
closest.to_csv(snakemake.output.closest, index=False)
compare_with_thesis(closest).to_csv(snakemake.output.comparison, index=False)
log.info("closest points:\n%s", closest.to_string())
