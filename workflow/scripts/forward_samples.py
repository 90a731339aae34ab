import script_setup

log = script_setup.start(snakemake)

from ddpm.analysis.forward import forward_samples, save_images_by_t  # noqa: E402
from ddpm.data.store import load_split  # noqa: E402
from ddpm.schedules import ScheduleSpec  # noqa: E402

images, _ = load_split(snakemake.input.data, "test")
params = snakemake.params
spec = ScheduleSpec.from_definition(params.label, params.schedule, params.T)
log.info("forward samples of test image 0 under %s (T=%d)", spec.label, spec.T)
save_images_by_t(snakemake.output[0], forward_samples(images[0].numpy(), spec.build()), T=spec.T)
