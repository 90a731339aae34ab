import script_setup

log = script_setup.start(snakemake)

import json  # noqa: E402

from ddpm.data import load_split  # noqa: E402
from ddpm.evaluation import train_classifier  # noqa: E402

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
)
log.info("classifier: %s", summary)
with open(snakemake.output.summary, "w") as f:
    json.dump(summary, f, indent=2)
