import script_setup

log = script_setup.start(snakemake)

import json  # noqa: E402

from ddpm.data.store import load_split  # noqa: E402
from ddpm.evaluation.classifier import train_classifier  # noqa: E402
from ddpm.files import atomic_write_text  # noqa: E402

device = script_setup.device(snakemake)
train_images, train_labels = load_split(snakemake.input.data, "train")
test_images, test_labels = load_split(snakemake.input.data, "test")
summary = train_classifier(
    train_images,
    train_labels,
    test_images,
    test_labels,
    snakemake.output.weights,
    device=device,
    image_size=snakemake.params.image_size,
    **snakemake.params.classifier,
)
log.info("classifier: %s", summary)
atomic_write_text(snakemake.output.summary, json.dumps(summary, indent=2))
