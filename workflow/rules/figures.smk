# Figures that need trained models: one PDF (thesis) and one PNG (report) each. Which figures
# exist, what they read and which runs they need is declared in src/ddpm/figures.py.


rule run_figure:
    input:
        unpack(figure_inputs),
    output:
        pdf="results/figures/{dataset}/{figure}.pdf",
        png="results/figures/{dataset}/{figure}.png",
    log:
        "logs/figures/{dataset}/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("run_figure"),
    conda:
        ENV
    params:
        settings=figure_settings,
        library_code=code("run_figure.py"),
    script:
        "../scripts/run_figure.py"


rule metric_figure:
    input:
        unpack(figure_inputs),
    output:
        pdf="results/figures/{dataset}/{figure}.pdf",
        png="results/figures/{dataset}/{figure}.png",
    log:
        "logs/figures/{dataset}/{figure}.log",
    wildcard_constraints:
        figure=figures_of_rule("metric_figure"),
    conda:
        ENV
    params:
        settings=figure_settings,
        library_code=code("metric_figure.py"),
    script:
        "../scripts/metric_figure.py"


rule figures:
    # `snakemake figures`: every figure, without the report.
    input:
        [figure_files(dataset, ext) for dataset in DATASETS for ext in ["pdf", "png"]],
        rules.thesis_figures.input,
