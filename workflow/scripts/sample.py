import script_setup

log = script_setup.start(snakemake)

from ddpm.sampling import generate, save_sample_grid, save_samples  # noqa: E402

options = snakemake.params.sampling
runs = zip(
    snakemake.input.models,
    snakemake.params.seeds,
    snakemake.output.samples,
    snakemake.output.grids,
    strict=True,
)
for model, seed, samples_path, grid_path in runs:
    log.info("sampling %s (seed %d)", model, seed)
    images = generate(
        model,
        options["num_samples"],
        sampler=options.get("sampler", "ancestral"),
        ddim_steps=options.get("ddim_steps", 50),
        eta=options.get("eta", 0.0),
        batch_size=options.get("batch_size", 256),
        seed=seed,
        precision=options.get("precision", "auto"),
        device=options.get("device", "auto"),
    )
    save_samples(samples_path, images)
    save_sample_grid(grid_path, images, snakemake.params.grid_samples)
