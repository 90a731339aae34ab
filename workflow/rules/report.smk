rule report:
    # A single HTML file with everything embedded: opens offline, can be mailed.
    input:
        metrics=expand("results/{dataset}/metrics.csv", dataset=DATASETS),
        floors=expand("results/{dataset}/floor.json", dataset=DATASETS),
        classifiers=expand(
            "results/{dataset}/classifier/classifier.json", dataset=DATASETS
        ),
        inception="resources/inception/status.json",
        figures=[figure_files(dataset) for dataset in DATASETS],
        thesis_figures=expand(
            "results/figures/thesis/{figure}.png", figure=THESIS_FIGURES
        ),
        schedules="results/analysis/schedules.csv",
        closest="results/analysis/closest_points.csv",
        comparison="results/analysis/closest_points_vs_thesis.csv",
        coding=[coding_runs(dataset) for dataset in DATASETS],
        benchmarks=[
            expand(
                "results/{dataset}/benchmarks/train/{schedule}-T{T}-seed{seed}.tsv",
                dataset=DATASETS,
                schedule=SCHEDULES,
                T=STEPS,
                seed=SEEDS,
            ),
            expand(
                "results/{dataset}/benchmarks/{step}/{schedule}-T{T}.tsv",
                dataset=DATASETS,
                step=["sample", "score"],
                schedule=SCHEDULES,
                T=STEPS,
            ),
            [coding_benchmarks(dataset) for dataset in DATASETS],
        ],
        lib=lib("report.py"),
    output:
        "results/report.html",
    log:
        "logs/report.log",
    conda:
        ENV_ANALYSIS
    params:
        grid={
            "datasets": DATASETS,
            "schedules": SCHEDULES,
            "T": STEPS,
            "seeds": SEEDS,
            "training_steps": config["training"]["steps"],
            "num_samples": config["sampling"]["num_samples"],
            "sampler": config["sampling"].get("sampler", "ancestral"),
        },
        configuration=config,
    script:
        "../scripts/report.py"
