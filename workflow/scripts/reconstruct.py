import script_setup

log = script_setup.start(snakemake)

from ddpm.data.store import load_split  # noqa: E402
from ddpm.sampling import reconstruction_series, save_reconstruction  # noqa: E402
from ddpm.study_precision import read_decision, recorded_choice  # noqa: E402

device = script_setup.device(snakemake)
decided = recorded_choice(
    read_decision(snakemake.input.precision), "sample", device, snakemake.input.precision
)
test_images, _ = load_split(snakemake.input.data, "test")
series = reconstruction_series(
    snakemake.input.model,
    test_images[: snakemake.params.num_images],
    snakemake.params.fractions,
    seed=snakemake.params.seed,
    device=device,
    **({"precision": decided} if decided is not None else {}),
)
save_reconstruction(snakemake.output[0], series)
