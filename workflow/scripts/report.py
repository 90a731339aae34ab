import script_setup

script_setup.start(snakemake)

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from ddpm.evaluation.study import read_inception_status  # noqa: E402
from ddpm.provenance import provenance  # noqa: E402
from ddpm.report.build import StudyGrid, build_report, read_dataset_results, read_run_provenance  # noqa: E402
from ddpm.results import read_benchmarks  # noqa: E402
from ddpm.study_precision import read_decision  # noqa: E402

inputs, params = snakemake.input, snakemake.params
datasets = [
    read_dataset_results(metrics, floor, classifier, inputs.figures, inputs.coding)
    for metrics, floor, classifier in zip(
        inputs.metrics, inputs.floors, inputs.classifiers, strict=True
    )
]
made_by = provenance()
made_by["versions"]["snakemake"] = params.snakemake_version
build_report(
    snakemake.output[0],
    grid=StudyGrid(**params.grid),
    datasets=datasets,
    schedule_table=pd.read_csv(inputs.schedules),
    closest_points=pd.read_csv(inputs.closest),
    thesis_comparison=pd.read_csv(inputs.comparison),
    forward_figures={Path(p).stem: p for p in inputs.thesis_figures},
    inception_note=read_inception_status(inputs.inception).get("reason"),
    run_times=read_benchmarks(inputs.benchmarks) if inputs.benchmarks else None,
    configuration=params.configuration,
    provenance={
        "made_by": made_by,
        "runs": read_run_provenance(inputs.records),
        "decisions": {Path(path).parent.name: read_decision(path) for path in inputs.precision},
    },
    shifted_band_entry=pd.read_csv(inputs.shifted),
)
