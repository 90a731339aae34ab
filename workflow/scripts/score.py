import script_setup

log = script_setup.start(snakemake)

from ddpm.data import load_split  # noqa: E402
from ddpm.evaluation import write_metrics  # noqa: E402
from ddpm.evaluation.study import read_inception_status, score_samples  # noqa: E402
from ddpm.sampling import load_samples  # noqa: E402

test_images, _ = load_split(snakemake.input.data, "test")
metrics = score_samples(
    load_samples(snakemake.input.samples),
    test_images,
    dataset=snakemake.wildcards.dataset,
    classifier_path=snakemake.input.classifier,
    inception_status=read_inception_status(snakemake.input.inception),
    cache_dir=snakemake.input.cache,
    options=snakemake.params.scoring,
)
write_metrics(snakemake.output[0], metrics)
