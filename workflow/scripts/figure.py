import script_setup

script_setup.start(snakemake)

from ddpm.plots.style import save_figure  # noqa: E402
from ddpm.workflow.figures import draw_figure  # noqa: E402

figure = draw_figure(
    snakemake.wildcards.figure, dict(snakemake.input.items()), snakemake.params.settings
)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
