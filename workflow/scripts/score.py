import script_setup

log = script_setup.start(snakemake)

from ddpm.data.store import load_split  # noqa: E402
from ddpm.evaluation.scoring import write_metrics  # noqa: E402
from ddpm.evaluation.study import read_inception_status, score_samples  # noqa: E402
from ddpm.sampling import clear_progress, load_samples  # noqa: E402
from ddpm.workflow.layout import sampling_progress_dir  # noqa: E402

device = script_setup.device(snakemake)
test_images, _ = load_split(snakemake.input.data, "test")
inception_status = read_inception_status(snakemake.input.inception)
for samples_path, metrics_path in zip(
    snakemake.input.samples, snakemake.output.metrics, strict=True
):
    log.info("scoring %s", samples_path)
    metrics = score_samples(
        load_samples(samples_path),
        test_images,
        dataset=snakemake.wildcards.dataset,
        classifier_path=snakemake.input.classifier,
        inception_status=inception_status,
        cache_dir=snakemake.input.cache,
        options=snakemake.params.scoring,
        device=device,
    )
    write_metrics(metrics_path, metrics)
# The samples were stored by a finished sampling job: the batches it kept for a retry can go.
for samples_path in snakemake.input.samples:
    clear_progress(sampling_progress_dir(samples_path))
