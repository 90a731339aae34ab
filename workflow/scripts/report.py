import script_setup

script_setup.start(snakemake)

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from ddpm.report import StudyGrid, build_report, read_dataset_results  # noqa: E402
from ddpm.results import read_benchmarks  # noqa: E402

inputs = snakemake.input
datasets = [
    read_dataset_results(metrics, floor, classifier, inputs.figures, inputs.coding)
    for metrics, floor, classifier in zip(
        inputs.metrics, inputs.floors, inputs.classifiers, strict=True
    )
]
build_report(
    snakemake.output[0],
    grid=StudyGrid(**snakemake.params.grid),
    datasets=datasets,
    schedule_table=pd.read_csv(inputs.schedules),
    closest_points=pd.read_csv(inputs.closest),
    thesis_comparison=pd.read_csv(inputs.comparison),
    forward_figures={Path(p).stem: p for p in inputs.thesis_figures},
    inception_note=json.loads(Path(inputs.inception).read_text()).get("reason"),
    run_times=read_benchmarks(inputs.benchmarks) if inputs.benchmarks else None,
    configuration=snakemake.params.configuration,
)
