import script_setup

log = script_setup.start(snakemake)

from pathlib import Path  # noqa: E402

from ddpm.data.store import load_split  # noqa: E402
from ddpm.spec import RunSpec  # noqa: E402
from ddpm.study_precision import read_decision, recorded_choice  # noqa: E402
from ddpm.training.loop import train  # noqa: E402

device = script_setup.device(snakemake)
images, _ = load_split(snakemake.input.data, "train")
cell = snakemake.wildcards
spec = RunSpec.from_study_config(
    snakemake.params.run,
    cell.dataset,
    cell.schedule,
    int(cell.T),
    int(cell.seed),
    tuple(images.shape[1:]),
    num_threads=snakemake.threads,
    device=device,
)
decision = read_decision(snakemake.input.precision)
train(
    images,
    spec,
    Path(snakemake.output.model).parent,
    precision_choice=recorded_choice(decision, "train", device, snakemake.input.precision),
)
