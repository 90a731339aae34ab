# Figures that need trained models: one PDF (thesis) and one PNG (report) each.

RUN_FIGURES = {
    "loss_curves": lambda ds: runs_of(ds, "train_log.csv"),
    "sample_grids": lambda ds: runs_of(ds, "samples.npz"),
    # Reconstruction is drawn for the largest T of each schedule, so only those cells compute it.
    "reconstruction": lambda ds: runs_of(ds, "reconstruction.npz", T=[max(STEPS)]),
}
if config["training"].get("snapshot_every"):
    RUN_FIGURES["training_progress"] = lambda ds: runs_of(ds, "snapshots.npz")

METRIC_FIGURES = [
    f"{extractor}_{metric}_vs_T"
    for extractor in (
        ["classifier", "inception"] if inception_enabled() else ["classifier"]
    )
    for metric in ("fid", "kid", "is")
] + ["loss_vs_fid"]


rule run_figure:
    input:
        runs=lambda wildcards: RUN_FIGURES[wildcards.figure](wildcards.dataset),
        lib=lib("run_figure.py"),
    output:
        pdf="results/figures/{dataset}/{figure}.pdf",
        png=report(
            "results/figures/{dataset}/{figure}.png",
            caption="../report/run_figures.rst",
            category="Training and samples",
            subcategory="{dataset}",
            labels={"figure": "{figure}"},
        ),
    log:
        "logs/figures/{dataset}/{figure}.log",
    wildcard_constraints:
        figure="|".join(RUN_FIGURES),
    conda:
        ENV_ANALYSIS
    params:
        grid_samples=config.get("figures", {}).get("grid_samples", 16),
    script:
        "../scripts/run_figure.py"


rule metric_figure:
    input:
        metrics="results/{dataset}/metrics.csv",
        floor="results/{dataset}/floor.json",
        lib=lib("metric_figure.py"),
    output:
        pdf="results/figures/{dataset}/{figure}.pdf",
        png=report(
            "results/figures/{dataset}/{figure}.png",
            caption="../report/metric_figures.rst",
            category="Sample quality",
            subcategory="{dataset}",
            labels={"figure": "{figure}"},
        ),
    log:
        "logs/figures/{dataset}/{figure}.log",
    wildcard_constraints:
        figure="|".join(METRIC_FIGURES),
    conda:
        ENV_ANALYSIS
    script:
        "../scripts/metric_figure.py"


rule figures:
    # `snakemake figures`: every figure, without the report.
    input:
        [
            dataset_figures(dataset, ext)
            for dataset in DATASETS
            for ext in ["pdf", "png"]
        ],
        rules.thesis_figures.input,
