# Figures that need trained models: one PDF (thesis) and one PNG (report) each. Which figures
# exist, what they read and which runs they need is declared in src/ddpm/figures.py.

from ddpm.figures import FIGURES, dataset_figures

FIGURE_FLAGS = {
    "snapshots": bool(config["training"].get("snapshot_every")),
    "inception": inception_enabled(),
}
DATASET_FIGURES = [figure.name for figure in dataset_figures(FIGURE_FLAGS)]


def figure_inputs(wildcards):
    """The files a dataset figure reads, by the names its draw function takes."""
    figure = FIGURES[wildcards.figure]
    dataset = wildcards.dataset
    files = {
        "metrics": f"results/{dataset}/metrics.csv",
        "floor": f"results/{dataset}/floor.json",
        "data": f"results/{dataset}/data.npz",
    }
    if figure.run_file:
        steps = [max(STEPS)] if figure.largest_T_only else None
        seeds = SEEDS[:1] if figure.first_seed_only else None
        files["runs"] = runs_of(dataset, figure.run_file, T=steps, seeds=seeds)
    return {name: files[name] for name in figure.reads}


def figure_settings(wildcards):
    """The draw function's settings from the config's `figures` section; a setting the config
    leaves out takes the draw function's default."""
    chosen = config.get("figures", {})
    return {
        keyword: chosen[key]
        for keyword, key in FIGURES[wildcards.figure].settings
        if key in chosen
    }


def figure_files(dataset, ext="png"):
    """Every figure of a dataset."""
    return [f"results/figures/{dataset}/{name}.{ext}" for name in DATASET_FIGURES]


def figures_of_rule(rule_name):
    """The dataset figures one rule makes, as a wildcard pattern."""
    names = [name for name in DATASET_FIGURES if FIGURES[name].rule == rule_name]
    return "|".join(re.escape(name) for name in names) or "^$"


rule run_figure:
    input:
        unpack(figure_inputs),
        lib=lib("run_figure.py"),
    output:
        pdf="results/figures/{dataset}/{figure}.pdf",
        png="results/figures/{dataset}/{figure}.png",
    log:
        "logs/figures/{dataset}/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("run_figure"),
    conda:
        ENV_ANALYSIS
    params:
        settings=figure_settings,
    script:
        "../scripts/run_figure.py"


rule metric_figure:
    input:
        unpack(figure_inputs),
        lib=lib("metric_figure.py"),
    output:
        pdf="results/figures/{dataset}/{figure}.pdf",
        png="results/figures/{dataset}/{figure}.png",
    log:
        "logs/figures/{dataset}/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("metric_figure"),
    conda:
        ENV_ANALYSIS
    params:
        settings=figure_settings,
    script:
        "../scripts/metric_figure.py"


rule figures:
    # `snakemake figures`: every figure, without the report.
    input:
        [figure_files(dataset, ext) for dataset in DATASETS for ext in ["pdf", "png"]],
        rules.thesis_figures.input,
