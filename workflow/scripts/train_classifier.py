import script_setup

log = script_setup.start(snakemake)

import json  # noqa: E402

from ddpm.data import load_split  # noqa: E402
from ddpm.evaluation import train_classifier  # noqa: E402
from ddpm.files import atomic_write_text  # noqa: E402

train_images, train_labels = load_split(snakemake.input.data, "train")
test_images, test_labels = load_split(snakemake.input.data, "test")
summary = train_classifier(
    train_images,
    train_labels,
    test_images,
    test_labels,
    snakemake.output.weights,
    epochs=snakemake.params.epochs,
    seed=snakemake.params.seed,
    image_size=snakemake.params.image_size,
)
log.info("classifier: %s", summary)
atomic_write_text(snakemake.output.summary, json.dumps(summary, indent=2))
