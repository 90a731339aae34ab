# Every figure: one PDF (thesis) and one PNG (report) each, per dataset or, for the figures
# that need no training, once (group `thesis`). Which figures exist, what they read and which
# runs they need is declared in src/ddpm/workflow/figures.py.


rule figure:
    input:
        unpack(figure_inputs),
    output:
        pdf=report(
            FIGURE_FILE.replace("{ext}", "pdf"),
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{group}",
        ),
        png=FIGURE_FILE.replace("{ext}", "png"),
    log:
        "logs/figures/{group}/{figure}.log",
    wildcard_constraints:
        group="|".join([STUDY_FIGURES, *DATASETS]),
        figure="|".join(re.escape(name) for name in FIGURES),
    conda:
        ENV
    params:
        settings=figure_settings,
        library_code=lambda wildcards: code("figure.py", FIGURES[wildcards.figure]),
    script:
        "../scripts/figure.py"


rule figures:
    # `snakemake figures`: every figure, without the report.
    input:
        [
            figure_files(dataset, DATASET_FIGURES, ext)
            for dataset in DATASETS
            for ext in ["pdf", "png"]
        ],
        rules.thesis_figures.input,
