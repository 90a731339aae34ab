import script_setup

log = script_setup.start(snakemake)

from ddpm.evaluation.inception import resolve_inception_weights  # noqa: E402
from ddpm.evaluation.study import write_inception_status  # noqa: E402

options = snakemake.params.inception
path, reason = resolve_inception_weights(snakemake.params.resources_dir, **options)
log.info("Inception-v3 weights (%s): %s", options["mode"], reason)
write_inception_status(snakemake.output[0], options["mode"], path, reason)
