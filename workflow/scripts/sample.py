import script_setup

log = script_setup.start(snakemake)

from ddpm.sampling import generate, save_sample_grid, save_samples  # noqa: E402
from ddpm.study_precision import read_decision, recorded_choice  # noqa: E402
from ddpm.workflow.layout import sampling_progress_dir  # noqa: E402

device = script_setup.device(snakemake)
options = dict(snakemake.params.sampling)
decided = recorded_choice(
    read_decision(snakemake.input.precision), "sample", device, snakemake.input.precision
)
if decided is not None:  # else this machine is not the kind that decided: generate decides
    options["precision"] = decided
runs = list(
    zip(
        snakemake.input.models,
        snakemake.params.seeds,
        snakemake.output.samples,
        snakemake.output.grids,
        strict=True,
    )
)
# Each run's finished batches stay in its directory's sampling/ until the cell's scoring has
# read the samples (score.py removes them): Snakemake deletes the outputs of a job that fails,
# and SLURM can mark a job that finished at its time limit as timed out, so a retry needs them.
for model, seed, samples_path, grid_path in runs:
    log.info("sampling %s (seed %d)", model, seed)
    progress_dir = sampling_progress_dir(samples_path)
    images = generate(model, seed=seed, device=device, progress_dir=progress_dir, **options)
    save_samples(samples_path, images)
    save_sample_grid(grid_path, images, snakemake.params.grid_samples)
