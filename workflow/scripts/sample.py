import script_setup

log = script_setup.start(snakemake)

from pathlib import Path  # noqa: E402

from ddpm.sampling import clear_progress, generate, save_sample_grid, save_samples  # noqa: E402
from ddpm.study_precision import read_decision, recorded_choice  # noqa: E402

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
# Each run's finished batches wait in its directory's sampling/ until every seed is stored:
# Snakemake deletes the outputs of a job that fails, so a retry needs them to resume.
progress = [Path(samples_path).parent / "sampling" for _, _, samples_path, _ in runs]
for (model, seed, samples_path, grid_path), progress_dir in zip(runs, progress, strict=True):
    log.info("sampling %s (seed %d)", model, seed)
    images = generate(model, seed=seed, device=device, progress_dir=progress_dir, **options)
    save_samples(samples_path, images)
    save_sample_grid(grid_path, images, snakemake.params.grid_samples)
for progress_dir in progress:
    clear_progress(progress_dir)
