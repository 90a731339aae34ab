# The forward-process analysis: needs no training, runs in seconds to minutes.

ANALYSIS = config.get("analysis", {})

# The figures that need no training, declared in src/ddpm/figures.py (an import-light module:
# parsing the workflow needs no Matplotlib); each reads the analysis tables named in its
# `reads`.
from ddpm.figures import FIGURES, study_figures

THESIS_FIGURES = [figure.name for figure in study_figures()]

ANALYSIS_FILES = {
    "destruction": "results/analysis/destruction.npz",
    "closeness_schedules": "results/analysis/closeness_schedules.csv",
    "closeness": "results/analysis/closeness.csv",
    "schedules": "results/analysis/schedules.csv",
    "forward_samples": "results/analysis/forward_samples.npz",
}


rule schedule_table:
    # Every schedule x T of the grid (and of the schedule-curve figure), one row per step t.
    input:
        lib("schedule_table.py"),
    output:
        "results/analysis/schedules.csv",
    log:
        "logs/analysis/schedule_table.log",
    conda:
        ENV_ANALYSIS
    params:
        schedules={label: config["schedules"][label] for label in SCHEDULES},
        T=sorted(set(STEPS) | set(ANALYSIS.get("curves_T", []))),
    script:
        "../scripts/schedule_table.py"


rule closeness_schedule_table:
    input:
        lib("schedule_table.py"),
    output:
        "results/analysis/closeness_schedules.csv",
    log:
        "logs/analysis/closeness_schedule_table.log",
    conda:
        ENV_ANALYSIS
    params:
        schedules=ANALYSIS.get("closeness", {}).get("schedules", {}),
        T=[ANALYSIS.get("closeness", {}).get("T", 1000)],
    script:
        "../scripts/schedule_table.py"


rule closeness:
    # Thesis section 5.1: 50 noised copies of one image, covariance minus identity; the band
    # entry in log-SNR terms, its prediction, and the check of resolution-shifted schedules.
    input:
        lib("closeness.py"),
    output:
        table="results/analysis/closeness.csv",
        closest="results/analysis/closest_points.csv",
        comparison="results/analysis/closest_points_vs_thesis.csv",
        shifted="results/analysis/shifted_band_entry.csv",
    log:
        "logs/analysis/closeness.log",
    conda:
        ENV_ANALYSIS
    params:
        closeness=ANALYSIS.get("closeness", {}),
    script:
        "../scripts/closeness.py"


rule destruction:
    # Thesis figure 4.3: a real photo at full resolution through the step-by-step chain.
    input:
        lib("destruction.py"),
    output:
        "results/analysis/destruction.npz",
    log:
        "logs/analysis/destruction.log",
    conda:
        ENV_ANALYSIS
    params:
        destruction=ANALYSIS.get("destruction", {}),
    script:
        "../scripts/destruction.py"


FORWARD = ANALYSIS.get("forward_samples", {})
FORWARD_DATASET = FORWARD.get("dataset") or DATASETS[0]
FORWARD_SCHEDULE = FORWARD.get("schedule") or SCHEDULES[0]


rule forward_samples:
    # Report 003 figure 2: forward samples of a real test image at several t
    # (analysis.forward_samples: dataset, schedule and T).
    input:
        data=f"results/{FORWARD_DATASET}/data.npz",
        lib=lib("forward_samples.py"),
    output:
        "results/analysis/forward_samples.npz",
    log:
        "logs/analysis/forward_samples.log",
    conda:
        ENV_ANALYSIS
    params:
        label=FORWARD_SCHEDULE,
        schedule=config["schedules"][FORWARD_SCHEDULE],
        T=FORWARD.get("T", 100),
    script:
        "../scripts/forward_samples.py"


rule thesis_figure:
    input:
        unpack(
            lambda wildcards: {
                table: ANALYSIS_FILES[table]
                for table in FIGURES[wildcards.figure].reads
            }
        ),
        lib=lib("thesis_figure.py"),
    output:
        pdf="results/figures/thesis/{figure}.pdf",
        png="results/figures/thesis/{figure}.png",
    log:
        "logs/figures/{figure}.log",
    wildcard_constraints:
        figure="|".join(re.escape(name) for name in THESIS_FIGURES),
    conda:
        ENV_ANALYSIS
    params:
        settings={},
    script:
        "../scripts/thesis_figure.py"


rule thesis_figures:
    # `snakemake thesis_figures`: every figure that needs no training.
    input:
        expand(
            "results/figures/thesis/{figure}.{ext}",
            figure=THESIS_FIGURES,
            ext=["pdf", "png"],
        ),
        "results/analysis/closest_points.csv",
        "results/analysis/closest_points_vs_thesis.csv",
