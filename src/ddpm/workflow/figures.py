"""Every figure of the study, declared once: what it reads, how it is drawn, its caption and
the report section it belongs to.

The workflow reads this registry when it parses (so draw functions are named by a dotted path,
imported only when the figure is drawn): its rule ``figure`` makes one PDF and one PNG per
figure through :func:`draw_figure`, and the report takes each figure's caption and section
from here.

Adding a figure is one :class:`Figure` in :data:`FIGURES` and one draw function. The draw
function takes one keyword argument per name in ``reads`` (a file path; ``runs`` is the list of
``run_file`` of every run), plus the figure's ``options`` and ``settings``, and returns a
Matplotlib figure.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .. import ConfigError
from .layout import ANALYSIS_FILES

__all__ = [
    "ANALYSIS_TABLES",
    "DATASET_INPUTS",
    "FIGURES",
    "FLAGS",
    "SECTIONS",
    "Figure",
    "dataset_figures",
    "draw_figure",
    "figure_caption",
    "study_figures",
]

#: What a dataset figure may read: every run's ``run_file``, the metrics table, the real-data
#: floor, the prepared dataset, the best cell's interpolation.
DATASET_INPUTS = ("runs", "data", "metrics", "floor", "interpolation")

#: What a figure of the forward process may read: one table of ``results/analysis/``.
ANALYSIS_TABLES = tuple(ANALYSIS_FILES)

#: Study settings a figure can depend on: it is made only where all its ``needs`` are on.
FLAGS = ("snapshots", "inception")

#: Report sections, in page order within a dataset; "forward" figures need no training.
SECTIONS = {
    "answers": "Answers",
    "training": "training",
    "samples": "samples",
    "quality": "sample quality",
    "coding": "progressive coding (rate and distortion along the reverse process)",
    "forward": "Forward process: schedules and closeness to noise",
}


@dataclass(frozen=True)
class Figure:
    """One figure of the study.

    Attributes:
        name: the file stem of its PDF and PNG.
        draw: ``"module:function"`` that draws it (imported only when drawn).
        caption: the sentence the report prints under it.
        section: a key of :data:`SECTIONS`.
        reads: the inputs the draw function takes, from :data:`DATASET_INPUTS` (a figure per
            dataset) or :data:`ANALYSIS_TABLES` (a figure of the forward process).
        run_file: the file of each run that ``runs`` means (e.g. ``train_log.csv``).
        largest_T_only: ``runs`` holds only the runs of the grid's largest T.
        first_seed_only: ``runs`` holds only the runs of the grid's first seed (for a figure
            that shows one run per schedule: the other seeds' files would be made for nothing).
        needs: the :data:`FLAGS` that must be on for the figure to be made.
        options: fixed keyword arguments of the draw function.
        settings: draw keyword -> key of the config's ``figures`` section.
    """

    name: str
    draw: str
    caption: str
    section: str
    reads: tuple[str, ...]
    run_file: str | None = None
    largest_T_only: bool = False
    first_seed_only: bool = False
    needs: tuple[str, ...] = ()
    options: tuple[tuple[str, object], ...] = ()
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def per_dataset(self) -> bool:
        """Drawn once per dataset (it reads a dataset's files), not once for the study (it
        reads the forward-process tables)."""
        return not set(self.reads) <= set(ANALYSIS_TABLES)

    def enabled(self, flags: Mapping[str, bool]) -> bool:
        return all(flags.get(flag, False) for flag in self.needs)

    @property
    def draw_module(self) -> str:
        """The module of the draw function (its code decides the figure)."""
        return self.draw.partition(":")[0]

    def draw_function(self) -> Callable:
        module, _, function = self.draw.partition(":")
        return getattr(importlib.import_module(module), function)


def _run_figures() -> list[Figure]:
    return [
        Figure(
            "loss_curves",
            "ddpm.plots.runs:draw_loss_curves",
            "Report 003 figure 4. Training loss (L_simple, smoothed) against step, one panel per "
            "schedule, one line per T; the band is the spread over seeds.",
            "training",
            reads=("runs",),
            run_file="train_log.csv",
        ),
        Figure(
            "sample_grids",
            "ddpm.plots.runs:draw_sample_grids",
            "Report 003 figure 5. Samples of every grid cell (Algorithm 2, EMA weights).",
            "samples",
            reads=("runs",),
            run_file="samples.npz",
            settings=(("count", "grid_samples"),),
        ),
        Figure(
            "reconstruction",
            "ddpm.plots.runs:draw_reconstruction",
            "Report 002 figure 4. Real test images noised to x_t and denoised back, for several "
            "t (largest T of each schedule).",
            "samples",
            reads=("runs",),
            run_file="reconstruction.npz",
            largest_T_only=True,
            first_seed_only=True,
        ),
        Figure(
            "training_progress",
            "ddpm.plots.runs:draw_training_progress",
            "Report 002 figure 3. Samples of the EMA model at several points during training "
            "(largest T of each schedule, DDIM with fixed noise).",
            "training",
            reads=("runs",),
            run_file="snapshots.npz",
            largest_T_only=True,
            first_seed_only=True,
            needs=("snapshots",),
            settings=(("count", "grid_samples"),),
        ),
    ]


_METRIC_CAPTIONS = {
    "fid": (
        "FID against T, one line per schedule: mean over seeds with its 95 % Student-t interval "
        "(thin bar; n seeds in the legend) and the part of it the finite samples alone explain "
        "(thick bar: bootstrap over the samples within each run). The dashed line and band are "
        "the floor: two disjoint real sets of the same size, with its bootstrap interval."
    ),
    "kid": "KID against T (unbiased at small sample sizes), bars and floor as for FID.",
    "is": (
        "Inception Score (from the named feature extractor) against T, bars as for FID, with the "
        "real data's IS at the same n."
    ),
}
# The column that summarises each metric: KID and IS are means over subsets / splits.
_SUMMARY_COLUMN = {"fid": "fid", "kid": "kid_mean", "is": "is_mean"}
_EXTRACTORS = {
    "classifier": ("the domain classifier trained on the dataset's labels", ()),
    "inception": ("torch-fidelity's Inception-v3", ("inception",)),
}


def _metric_figures() -> list[Figure]:
    quality = [
        Figure(
            f"{extractor}_{metric}_vs_T",
            "ddpm.plots.metrics:draw_metric_vs_T",
            f"{caption} Features: {description}.",
            "quality",
            reads=("metrics", "floor"),
            needs=needs,
            options=(("metric", f"{extractor}_{_SUMMARY_COLUMN[metric]}"),),
        )
        for extractor, (description, needs) in _EXTRACTORS.items()
        for metric, caption in _METRIC_CAPTIONS.items()
    ]
    return [
        *quality,
        Figure(
            "loss_vs_fid",
            "ddpm.plots.metrics:draw_loss_vs_metric",
            "Final training loss against the classifier FID across the grid: report 003 claimed "
            "that the loss does not predict sample quality; the rank correlation is in the title.",
            "quality",
            reads=("metrics",),
            options=(("metric", "classifier_fid"),),
        ),
        Figure(
            "best_cell",
            "ddpm.plots.runs:draw_best_cell",
            "The best cell (lowest mean FID) next to real test digits: the seed whose FID is the "
            "cell's median, the same number of images on each side.",
            "answers",
            reads=("metrics", "floor", "runs", "data"),
            run_file="samples.npz",
            settings=(("count", "best_cell_samples"),),
        ),
    ]


def _forward_figure(name: str, function: str, table: str, caption: str) -> Figure:
    return Figure(name, f"ddpm.plots.thesis:{function}", caption, "forward", reads=(table,))


def _forward_figures() -> list[Figure]:
    return [
        _forward_figure(
            "thesis_fig4.3_iterative_destruction",
            "draw_iterative_destruction",
            "destruction",
            "Thesis figure 4.3. A real photo at full resolution destroyed step by step by the "
            "chain q(x_t | x_{t-1}), linear schedule of 5000 steps from 0.001 to 0.02.",
        ),
        _forward_figure(
            "thesis_fig5.1_beta_and_one_minus_alpha_bar",
            "draw_beta_and_one_minus_alpha_bar",
            "closeness_schedules",
            "Thesis figure 5.1. beta_t (left) and 1 - alpha_bar_t (right) of the linear and "
            "cosine schedules: the linear schedule's variance saturates early, so its last steps "
            "add little.",
        ),
        _forward_figure(
            "thesis_fig5.2_closeness_to_noise",
            "draw_closeness",
            "closeness",
            "Thesis figure 5.2. Closeness to isotropic noise: 50 copies of one image through "
            "q(x_t | x_0), mean |covariance - I|, against t; one line per image size. The shaded "
            "band is what pure N(0, I) noise gives at this batch size; the marker is the closest "
            "point.",
        ),
        _forward_figure(
            "report003_fig1_alpha_bar_vs_t_over_T",
            "draw_alpha_bar_vs_t_over_T",
            "schedules",
            "Report 003 figure 1. alpha_bar against t/T for the three schedules and several T.",
        ),
        _forward_figure(
            "report003_fig2_forward_samples_histograms",
            "draw_forward_samples_with_histograms",
            "forward_samples",
            "Report 003 figure 2. Forward samples at several t for T = 100 with their pixel "
            "histograms and the standard normal density.",
        ),
        Figure(
            "closeness_vs_log_snr",
            "ddpm.plots.log_snr:draw_closeness_vs_log_snr",
            "The closeness curves of thesis figure 5.2 against the log-SNR log(alpha_bar_t / "
            "(1 - alpha_bar_t)) instead of t (noise to the right): one column per image size, one "
            "row per image in the copies reading, and a last row for the pixels reading, which "
            "never sees the image and is the same for every image. Every schedule's curve falls "
            "onto one curve per image and size: the schedule only decides at which step a log-SNR "
            "is reached. Shaded: the pure-noise band; markers: where each schedule enters it; "
            "dashed: the predicted level, where the expected reading meets the band's edge "
            "(docs/closeness.md).",
            "forward",
            reads=("closeness",),
        ),
    ]


def _seed004_figures() -> list[Figure]:
    """Seed 004's experiments on the trained models: progressive coding and interpolation."""
    return [
        Figure(
            "rate_distortion",
            "ddpm.plots.coding:draw_rate_distortion",
            "Ho et al. figure 5, per schedule (largest T). Progressive coding of held-out test "
            "images: the rate sent until x_t has arrived (the bound's terms L_T, ..., L_t, "
            "bits/dim) against the distortion of the model's x_0 estimate from x_t (RMSE on the "
            "[0, 255] scale), and both against the reverse steps done. The last point of each "
            "line is the discrete decoder p(x_0 | x_1): the whole bound and the distortion of "
            "its most likely 8-bit image. Mean over seeds; the band is the 95 % t-interval.",
            "coding",
            reads=("runs",),
            run_file="coding.csv",
            largest_T_only=True,
        ),
        Figure(
            "interpolation",
            "ddpm.plots.runs:draw_interpolation",
            "Ho et al. figure 9. Two test digits noised to x_t with one noise draw, mixed as "
            "(1 − λ) x_t^a + λ x_t^b and denoised by the best cell's model (its median seed), "
            "for λ = 0, 1/8, ..., 1 and several t (one row each). Small t blends the two "
            "images' pixels; large t keeps only their coarse shape and lets the model draw a "
            "digit of its own. The same seed gives the same figure.",
            "samples",
            reads=("interpolation",),
        ),
    ]


#: Every figure by name, in the order the report shows them within a section.
FIGURES: dict[str, Figure] = {
    figure.name: figure
    for figure in [
        *_run_figures(),
        *_metric_figures(),
        *_forward_figures(),
        *_seed004_figures(),
    ]
}


def dataset_figures(flags: Mapping[str, bool]) -> list[Figure]:
    """The figures drawn for every dataset of a study with these :data:`FLAGS`."""
    return [f for f in FIGURES.values() if f.per_dataset and f.enabled(flags)]


def study_figures() -> list[Figure]:
    """The figures of the forward process, drawn once for the study."""
    return [f for f in FIGURES.values() if not f.per_dataset]


def figure_caption(name: str) -> str:
    """The caption of figure ``name``; a figure outside the registry is named by its words."""
    figure = FIGURES.get(name)
    return figure.caption if figure else name.replace("_", " ")


def draw_figure(
    name: str,
    inputs: Mapping[str, str | Sequence[str]],
    settings: Mapping[str, object] | None = None,
):
    """Draw figure ``name`` from its input files (one per name in its ``reads``) and its
    settings (draw keyword -> value); returns the Matplotlib figure."""
    if name not in FIGURES:
        raise ConfigError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    figure = FIGURES[name]
    missing = [key for key in figure.reads if key not in inputs]
    if missing:
        raise ConfigError(f"figure {name!r} reads {list(figure.reads)}; missing {missing}")
    arguments = {key: inputs[key] for key in figure.reads}
    return figure.draw_function()(**arguments, **dict(figure.options), **(settings or {}))
