# The DDPM schedule study: schedules x diffusion steps T x seeds, trained, sampled, scored,
# analysed and reported. Run `make study` or `snakemake --cores all`; see README.md.

from snakemake.utils import min_version

min_version("9.0")


# common.smk builds the config: config/config.yaml (found from any --directory), every
# --configfile merged onto it, then every --config KEY=VALUE; see config/README.md.
include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    schedule=LABEL_PATTERN,
    T=r"\d+",
    seed=r"\d+",


include: "workflow/rules/data.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/coding.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


# Light rules (tables, figures, the report) run in the main process, not as cluster jobs.
localrules:
    schedule_table,
    closeness_schedule_table,
    forward_samples,
    thesis_figures,
    collect_metrics,
    figure,
    figures,
    report,
    all,


rule all:
    default_target: True
    input:
        "results/report.html",
