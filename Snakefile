# The DDPM schedule study: schedules x diffusion steps T x seeds, trained, sampled, scored,
# analysed and reported. Run `snakemake --cores all --use-conda`; see README.md.

import os

from snakemake.utils import min_version

min_version("9.0")


# Config files given with --configfile replace the default one instead of being merged into it,
# so that a full-scale or test config never inherits datasets or schedules it does not name.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


# Light rules (tables, figures, the report) run in the main process, not as cluster jobs.
localrules:
    schedule_table,
    closeness_schedule_table,
    forward_samples,
    thesis_figure,
    thesis_figures,
    collect_metrics,
    run_figure,
    metric_figure,
    figures,
    report,
    all,


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        "results/report.html",
