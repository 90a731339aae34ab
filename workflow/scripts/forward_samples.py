import script_setup

log = script_setup.start(snakemake)

from ddpm.analysis import forward_samples, save_images_by_t  # noqa: E402
from ddpm.data import load_split  # noqa: E402
from ddpm.spec import ScheduleSpec  # noqa: E402

images, _ = load_split(snakemake.input.data, "test")
spec = ScheduleSpec.from_definition("forward", snakemake.params.schedule, snakemake.params.T)
save_images_by_t(snakemake.output[0], forward_samples(images[0].numpy(), spec.build()), T=spec.T)
