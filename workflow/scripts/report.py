import script_setup

script_setup.start(snakemake)

from ddpm.analysis import explain_closeness_readings  # noqa: E402
from ddpm.report import build_report  # noqa: E402

inputs = snakemake.input
build_report(
    snakemake.output[0],
    config=snakemake.params.config,
    metrics_tables=inputs.metrics,
    floors=inputs.floors,
    classifiers=inputs.classifiers,
    inception_status=inputs.inception,
    figures=inputs.figures,
    thesis_figures=inputs.thesis_figures,
    closest_points=inputs.closest,
    thesis_comparison=inputs.comparison,
    benchmarks=inputs.benchmarks,
    closeness_explanation=explain_closeness_readings(),
)
