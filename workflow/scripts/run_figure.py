import script_setup

script_setup.start(snakemake)

# The modules of this rule's draw functions, imported here so that the rule's library inputs
# (read from this script's imports) cover them.
from ddpm.figures import draw_figure  # noqa: E402
from ddpm.plots import coding, runs, save_figure  # noqa: E402, F401

figure = draw_figure(
    snakemake.wildcards.figure, dict(snakemake.input.items()), snakemake.params.settings
)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
