import script_setup

log = script_setup.start(snakemake)

from ddpm.data import load_split  # noqa: E402
from ddpm.sampling import reconstruction_series, save_reconstruction  # noqa: E402

test_images, _ = load_split(snakemake.input.data, "test")
series = reconstruction_series(
    snakemake.input.model,
    test_images[: snakemake.params.num_images],
    snakemake.params.fractions,
    seed=snakemake.params.seed,
)
save_reconstruction(snakemake.output[0], series)
