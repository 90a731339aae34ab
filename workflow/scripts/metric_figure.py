import script_setup

script_setup.start(snakemake)

import pandas as pd  # noqa: E402

from ddpm.evaluation import read_metrics  # noqa: E402
from ddpm.plots import save_figure, use_style  # noqa: E402
from ddpm.plots.metrics import plot_loss_vs_metric, plot_metric_vs_T  # noqa: E402

# The column that summarises each metric: KID and IS are means over subsets / splits.
SUMMARY_COLUMN = {"fid": "fid", "kid": "kid_mean", "is": "is_mean"}

use_style()
runs = pd.read_csv(snakemake.input.metrics)
figure_name = snakemake.wildcards.figure
if figure_name.startswith("loss_vs_"):
    figure = plot_loss_vs_metric(runs, "classifier_" + figure_name.removeprefix("loss_vs_"))
else:
    extractor, short = figure_name.removesuffix("_vs_T").split("_")
    metric = f"{extractor}_{SUMMARY_COLUMN[short]}"
    floor = read_metrics(snakemake.input.floor).get(metric)
    figure = plot_metric_vs_T(runs, metric, floor=floor)
save_figure(figure, snakemake.output.pdf, snakemake.output.png)
