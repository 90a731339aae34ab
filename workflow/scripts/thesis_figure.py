import script_setup

script_setup.start(snakemake)

from ddpm.plots import save_figure  # noqa: E402
from ddpm.plots.thesis import thesis_figure_from_file  # noqa: E402

figure = thesis_figure_from_file(snakemake.wildcards.figure, snakemake.input.table)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
