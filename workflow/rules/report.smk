from snakemake import __version__ as snakemake_version


rule report:
    # A single HTML file with everything embedded: opens offline, can be mailed.
    input:
        metrics=expand(DATASET_FILES["metrics"], dataset=DATASETS),
        floors=expand(DATASET_FILES["floor"], dataset=DATASETS),
        classifiers=expand(DATASET_FILES["classifier_summary"], dataset=DATASETS),
        inception=f"{INCEPTION_RESOURCES}/status.json",
        figures=[figure_files(dataset, DATASET_FIGURES) for dataset in DATASETS],
        thesis_figures=figure_files(STUDY_FIGURES, STUDY_FIGURE_NAMES),
        records=[runs_of(dataset, "run.json") for dataset in DATASETS],
        precision=expand(DATASET_FILES["precision"], dataset=DATASETS),
        schedules=ANALYSIS_FILES["schedules"],
        closest=ANALYSIS_FILES["closest_points"],
        comparison=ANALYSIS_FILES["thesis_comparison"],
        shifted=ANALYSIS_FILES["shifted_band_entry"],
        coding=[coding_runs(dataset) for dataset in DATASETS],
        benchmarks=[
            expand(
                benchmark_file("train", RUN.rpartition("/")[2]),
                dataset=DATASETS,
                schedule=SCHEDULES,
                T=STEPS,
                seed=SEEDS,
            ),
            expand(
                BENCHMARK.replace("{job}", CELL),
                dataset=DATASETS,
                step=["sample", "score"],
                schedule=SCHEDULES,
                T=STEPS,
            ),
            expand(
                benchmark_file("coding", CELL),
                dataset=DATASETS,
                schedule=SCHEDULES,
                T=coding_T(),
            ),
        ],
    output:
        # Also in Snakemake's own report (`snakemake --report report.zip`), which adds the
        # provenance Snakemake records of every rule.
        report(
            "results/report.html",
            caption="../report/study.rst",
            category="Study report",
        ),
    log:
        "logs/report.log",
    conda:
        ENV
    params:
        grid={
            "datasets": DATASETS,
            "schedules": SCHEDULES,
            "T": STEPS,
            "seeds": SEEDS,
            "training_steps": config["training"]["steps"],
            "num_samples": config["sampling"]["num_samples"],
            "sampler": config["sampling"]["sampler"],
        },
        configuration=config,
        snakemake_version=snakemake_version,
        library_code=code("report.py"),
    script:
        "../scripts/report.py"
