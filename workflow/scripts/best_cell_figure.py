import script_setup

script_setup.start(snakemake)

import pandas as pd  # noqa: E402

from ddpm.evaluation import read_metrics  # noqa: E402
from ddpm.plots import save_figure, use_style  # noqa: E402
from ddpm.plots.runs import best_cell_figure_from_files  # noqa: E402

use_style()
figure = best_cell_figure_from_files(
    pd.read_csv(snakemake.input.metrics),
    read_metrics(snakemake.input.floor),
    list(snakemake.input.samples),
    snakemake.input.data,
    snakemake.params.images,
)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
