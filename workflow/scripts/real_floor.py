import script_setup

log = script_setup.start(snakemake)

from ddpm.data.store import load_split  # noqa: E402
from ddpm.evaluation.scoring import write_metrics  # noqa: E402
from ddpm.evaluation.study import read_inception_status, score_real_floor  # noqa: E402

device = script_setup.device(snakemake)
train_images, _ = load_split(snakemake.input.data, "train")
test_images, _ = load_split(snakemake.input.data, "test")
floor = score_real_floor(
    train_images,
    test_images,
    snakemake.params.num_samples,
    dataset=snakemake.wildcards.dataset,
    classifier_path=snakemake.input.classifier,
    inception_status=read_inception_status(snakemake.input.inception),
    cache_dir=snakemake.output.cache,
    options=snakemake.params.scoring,
    device=device,
)
write_metrics(snakemake.output.floor, floor)
