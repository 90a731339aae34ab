import script_setup

log = script_setup.start(snakemake)

from ddpm.data.store import load_split  # noqa: E402
from ddpm.study_precision import decide_study_precision, write_decision  # noqa: E402
from ddpm.unet_config import unet_config_for  # noqa: E402

images, _ = load_split(snakemake.input.data, "train")
params = snakemake.params
training, sampling = params.training, params.sampling
decision = decide_study_precision(
    unet_config_for(params.model, images.shape[1], images.shape[-1]),
    train_batch_size=training["batch_size"],
    sample_batch_size=min(sampling["batch_size"], sampling["num_samples"]),
    train_precision=training["precision"],
    sample_precision=sampling["precision"],
    device=script_setup.device(snakemake),
    T=params.T,
)
write_decision(snakemake.output[0], decision)
