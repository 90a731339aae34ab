import script_setup

script_setup.start(snakemake)

import pandas as pd  # noqa: E402

from ddpm.evaluation import read_metrics  # noqa: E402
from ddpm.plots import save_figure, use_style  # noqa: E402
from ddpm.plots.metrics import metric_figure  # noqa: E402

use_style()
figure = metric_figure(
    snakemake.wildcards.figure,
    pd.read_csv(snakemake.input.metrics),
    read_metrics(snakemake.input.floor),
)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
