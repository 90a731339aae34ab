import script_setup

script_setup.start(snakemake)

from ddpm.plots import save_figure  # noqa: E402
from ddpm.plots.runs import run_figure_from_files  # noqa: E402

figure = run_figure_from_files(
    snakemake.wildcards.figure, list(snakemake.input.runs), snakemake.params.grid_samples
)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
