import script_setup

log = script_setup.start(snakemake)

from ddpm.evaluation import resolve_inception_weights  # noqa: E402
from ddpm.evaluation.study import write_inception_status  # noqa: E402

options = snakemake.params.inception
mode = options.get("mode", "auto")
path, reason = resolve_inception_weights(
    mode, options.get("weights_path"), options.get("url"), snakemake.params.resources_dir
)
log.info("Inception-v3 weights (%s): %s", mode, reason)
write_inception_status(snakemake.output[0], mode, path, reason)
