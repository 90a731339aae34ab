import script_setup

log = script_setup.start(snakemake)

from ddpm.data import load_split  # noqa: E402
from ddpm.evaluation import write_metrics  # noqa: E402
from ddpm.evaluation.study import read_inception_status, score_against_test_set  # noqa: E402

train_images, _ = load_split(snakemake.input.data, "train")
test_images, _ = load_split(snakemake.input.data, "test")
n = snakemake.params.num_samples
floor = score_against_test_set(
    train_images[:n],
    test_images,
    dataset=snakemake.wildcards.dataset,
    classifier_path=snakemake.input.classifier,
    inception_status=read_inception_status(snakemake.input.inception),
    cache_dir=snakemake.output.cache,
    options=snakemake.params.scoring,
    real_pool=train_images,
)
write_metrics(snakemake.output.floor, floor)
