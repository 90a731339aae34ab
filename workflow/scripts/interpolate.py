import script_setup

script_setup.start(snakemake)

from ddpm.interpolation import best_cell_interpolation  # noqa: E402
from ddpm.study_precision import read_decision, recorded_choice  # noqa: E402

device = script_setup.device(snakemake)
options = dict(snakemake.params.options)
decided = recorded_choice(
    read_decision(snakemake.input.precision), "sample", device, snakemake.input.precision
)
if decided is not None:  # else this machine is not the kind that decided: the library decides
    options["precision"] = decided
best_cell_interpolation(
    snakemake.input.metrics,
    snakemake.input.floor,
    snakemake.input.models,
    snakemake.input.data,
    snakemake.output[0],
    device=device,
    **options,
)
