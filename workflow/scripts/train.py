import script_setup

log = script_setup.start(snakemake)

from pathlib import Path  # noqa: E402

from ddpm.data import load_split  # noqa: E402
from ddpm.diffusion import GaussianDiffusion  # noqa: E402
from ddpm.schedules import make_schedule  # noqa: E402
from ddpm.training import TrainingConfig, train  # noqa: E402
from ddpm.unet import UNetConfig  # noqa: E402

images, _ = load_split(snakemake.input.data, "train")
spec = snakemake.params.schedule
schedule = make_schedule(spec["beta_schedule"], spec["T"], **spec["params"])
diffusion = GaussianDiffusion(schedule, **snakemake.params.diffusion)
unet_config = UNetConfig.from_dict(
    {**snakemake.params.model, "image_channels": images.shape[1], "image_size": images.shape[-1]}
)
training = TrainingConfig(**snakemake.params.training, num_threads=snakemake.threads)
train(
    images,
    diffusion,
    unet_config,
    training,
    Path(snakemake.output.model).parent,
    record={
        "dataset": snakemake.wildcards.dataset,
        "schedule_label": snakemake.wildcards.schedule,
    },
)
