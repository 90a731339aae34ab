# The forward-process analysis: needs no training, runs in seconds to minutes.

ANALYSIS = config["analysis"]
CLOSENESS = ANALYSIS["closeness"]


rule schedule_table:
    # Every schedule x T of the grid (and of the schedule-curve figure), one row per step t.
    output:
        ANALYSIS_FILES["schedules"],
    log:
        "logs/analysis/schedule_table.log",
    conda:
        ENV
    params:
        schedules={label: config["schedules"][label] for label in SCHEDULES},
        T=sorted(set(STEPS) | set(ANALYSIS["curves_T"])),
        library_code=code("schedule_table.py"),
    script:
        "../scripts/schedule_table.py"


rule closeness_schedule_table:
    output:
        ANALYSIS_FILES["closeness_schedules"],
    log:
        "logs/analysis/closeness_schedule_table.log",
    conda:
        ENV
    params:
        schedules=CLOSENESS["schedules"],
        T=[CLOSENESS["T"]],
        library_code=code("schedule_table.py"),
    script:
        "../scripts/schedule_table.py"


rule closeness:
    # Thesis section 5.1: 50 noised copies of one image, covariance minus identity; the band
    # entry in log-SNR terms, its prediction, and the check of resolution-shifted schedules.
    output:
        table=ANALYSIS_FILES["closeness"],
        closest=ANALYSIS_FILES["closest_points"],
        comparison=ANALYSIS_FILES["thesis_comparison"],
        shifted=ANALYSIS_FILES["shifted_band_entry"],
    log:
        "logs/analysis/closeness.log",
    conda:
        ENV
    params:
        closeness=CLOSENESS,
        library_code=code("closeness.py"),
    script:
        "../scripts/closeness.py"


rule destruction:
    # Thesis figure 4.3: a real photo at full resolution through the step-by-step chain.
    output:
        ANALYSIS_FILES["destruction"],
    log:
        "logs/analysis/destruction.log",
    conda:
        ENV
    params:
        destruction=ANALYSIS["destruction"],
        library_code=code("destruction.py"),
    script:
        "../scripts/destruction.py"


# null in analysis.forward_samples: the first dataset and the first schedule of the grid.
FORWARD = ANALYSIS["forward_samples"]
FORWARD_DATASET = FORWARD.get("dataset") or DATASETS[0]
FORWARD_SCHEDULE = FORWARD.get("schedule") or SCHEDULES[0]


rule forward_samples:
    # Report 003 figure 2: forward samples of a real test image at several t
    # (analysis.forward_samples: dataset, schedule and T).
    input:
        data=dataset_file("data", FORWARD_DATASET),
    output:
        ANALYSIS_FILES["forward_samples"],
    log:
        "logs/analysis/forward_samples.log",
    conda:
        ENV
    params:
        label=FORWARD_SCHEDULE,
        schedule=config["schedules"][FORWARD_SCHEDULE],
        T=FORWARD["T"],
        library_code=code("forward_samples.py"),
    script:
        "../scripts/forward_samples.py"


rule thesis_figures:
    # `snakemake thesis_figures`: every figure that needs no training, and the closest points.
    input:
        figure_files(STUDY_FIGURES, STUDY_FIGURE_NAMES, "pdf"),
        figure_files(STUDY_FIGURES, STUDY_FIGURE_NAMES, "png"),
        ANALYSIS_FILES["closest_points"],
        ANALYSIS_FILES["thesis_comparison"],
