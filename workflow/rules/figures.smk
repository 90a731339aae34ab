# Figures that need trained models: one PDF (thesis) and one PNG (report) each.

RUN_FIGURES = {
    "loss_curves": lambda ds: runs_of(ds, "train_log.csv"),
    "sample_grids": lambda ds: runs_of(ds, "samples.npz"),
    # Reconstruction is drawn for the largest T of each schedule, so only those cells compute it.
    "reconstruction": lambda ds: runs_of(ds, "reconstruction.npz", T=[max(STEPS)]),
}
if config["training"].get("snapshot_every"):
    RUN_FIGURES["training_progress"] = lambda ds: runs_of(ds, "snapshots.npz")

# FID next to KID (unbiased at small n) and IS, per extractor.
QUALITY_FIGURES = [
    f"{extractor}_{metric}_vs_T"
    for extractor in (
        ["classifier", "inception"] if inception_enabled() else ["classifier"]
    )
    for metric in ("fid", "kid", "is")
] + ["loss_vs_fid"]
# Every figure that reads the metrics table: the quality figures and the best cell's samples.
METRIC_FIGURES = QUALITY_FIGURES + ["best_cell"]


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
        figure="|".join(QUALITY_FIGURES),
    conda:
        ENV_ANALYSIS
    script:
        "../scripts/metric_figure.py"


rule best_cell_figure:
    # The samples of the cell with the lowest mean FID next to real test digits.
    input:
        metrics="results/{dataset}/metrics.csv",
        floor="results/{dataset}/floor.json",
        samples=lambda wildcards: runs_of(wildcards.dataset, "samples.npz"),
        data="results/{dataset}/data.npz",
        lib=lib("best_cell_figure.py"),
    output:
        pdf="results/figures/{dataset}/best_cell.pdf",
        png=report(
            "results/figures/{dataset}/best_cell.png",
            caption="../report/best_cell.rst",
            category="Sample quality",
            subcategory="{dataset}",
        ),
    log:
        "logs/figures/{dataset}/best_cell.log",
    conda:
        ENV_ANALYSIS
    params:
        images=config.get("figures", {}).get("best_cell_samples", 64),
    script:
        "../scripts/best_cell_figure.py"


rule figures:
    # `snakemake figures`: every figure, without the report.
    input:
        [
            dataset_figures(dataset, ext)
            for dataset in DATASETS
            for ext in ["pdf", "png"]
        ],
        rules.thesis_figures.input,
