import script_setup

log = script_setup.start(snakemake)

from ddpm.sampling import generate, save_sample_grid, save_samples  # noqa: E402

options = snakemake.params.sampling
images = generate(
    snakemake.input.model,
    options["num_samples"],
    sampler=options.get("sampler", "ancestral"),
    ddim_steps=options.get("ddim_steps", 50),
    eta=options.get("eta", 0.0),
    batch_size=options.get("batch_size", 256),
    seed=snakemake.params.seed,
    precision=options.get("precision", "auto"),
    device=options.get("device", "auto"),
)
save_samples(snakemake.output.samples, images)
save_sample_grid(snakemake.output.grid, images, snakemake.params.grid_samples)
