import script_setup

log = script_setup.start(snakemake)

from ddpm.analysis import forward_samples, save_images_by_t  # noqa: E402
from ddpm.data import load_split  # noqa: E402
from ddpm.schedules import make_schedule  # noqa: E402

images, _ = load_split(snakemake.input.data, "test")
definition = snakemake.params.schedule
T = snakemake.params.T
schedule = make_schedule(definition["beta_schedule"], T, **definition.get("params", {}))
save_images_by_t(snakemake.output[0], forward_samples(images[0].numpy(), schedule), T=T)
