"""The study's report: one self-contained HTML file (figures embedded) that opens offline."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

__all__ = ["CAPTIONS", "build_report", "figure_caption"]

# One caption per figure, by file stem. The Snakemake report's captions say the same.
CAPTIONS = {
    "thesis_fig4.3_iterative_destruction": (
        "Thesis figure 4.3. A real photo at full resolution destroyed step by step by the chain "
        "q(x_t | x_{t-1}), linear schedule of 5000 steps from 0.001 to 0.02."
    ),
    "thesis_fig5.1_beta_and_one_minus_alpha_bar": (
        "Thesis figure 5.1. beta_t (left) and 1 - alpha_bar_t (right) of the linear and cosine "
        "schedules: the linear schedule's variance saturates early, so its last steps add little."
    ),
    "thesis_fig5.2_closeness_to_noise": (
        "Thesis figure 5.2. Closeness to isotropic noise: 50 copies of one image through "
        "q(x_t | x_0), mean |covariance - I|, against t; one line per image size. The shaded band is "
        "what pure N(0, I) noise gives at this batch size; the marker is the closest point."
    ),
    "report003_fig1_alpha_bar_vs_t_over_T": (
        "Report 003 figure 1. alpha_bar against t/T for the three schedules and several T."
    ),
    "report003_fig2_forward_samples_histograms": (
        "Report 003 figure 2. Forward samples at several t for T = 100 with their pixel histograms "
        "and the standard normal density."
    ),
    "loss_curves": (
        "Report 003 figure 4. Training loss (L_simple, smoothed) against step, one panel per "
        "schedule, one line per T; the band is the spread over seeds."
    ),
    "sample_grids": "Report 003 figure 5. Samples of every grid cell (Algorithm 2, EMA weights).",
    "training_progress": (
        "Report 002 figure 3. Samples of the EMA model at several points during training "
        "(largest T of each schedule, DDIM with fixed noise)."
    ),
    "reconstruction": (
        "Report 002 figure 4. Real test images noised to x_t and denoised back, for several t "
        "(largest T of each schedule)."
    ),
    "fid_vs_T": (
        "FID against T, one line per schedule: mean over seeds with its 95 % Student-t interval "
        "(thin bar; n seeds in the legend) and the part of it the finite samples alone explain "
        "(thick bar: bootstrap over the samples within each run). The dashed line and band are "
        "the floor: two disjoint real sets of the same size, with its bootstrap interval."
    ),
    "kid_vs_T": ("KID against T (unbiased at small sample sizes), bars and floor as for FID."),
    "is_vs_T": (
        "Inception Score (from the named feature extractor) against T, bars as for FID, with the "
        "real data's IS at the same n."
    ),
    "best_cell": (
        "The best cell (lowest mean FID) next to real test digits: the seed whose FID is the "
        "cell's median, the same number of images on each side."
    ),
    "loss_vs_fid": (
        "Final training loss against the classifier FID across the grid: report 003 claimed that the loss does not "
        "predict sample quality; the rank correlation is in the title."
    ),
}


EXTRACTOR_NAMES = {
    "classifier": "the domain classifier trained on the dataset's labels",
    "inception": "torch-fidelity's Inception-v3",
}


def figure_caption(path: str | Path) -> str:
    """The caption of a figure file, by its stem; metric figures also name their extractor."""
    stem = Path(path).stem
    for extractor, description in EXTRACTOR_NAMES.items():
        if stem.startswith(extractor + "_"):
            base = CAPTIONS.get(stem.removeprefix(extractor + "_"), stem)
            return f"{base} Features: {description}."
    return CAPTIONS.get(stem, stem.replace("_", " "))


def _image(path: str | Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    caption = html.escape(figure_caption(path))
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(Path(path).stem)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _table(frame: pd.DataFrame, float_format="{:.4g}") -> str:
    return frame.to_html(
        index=False, border=0, classes="table", float_format=float_format.format, na_rep="–"
    )


def _read_json(path) -> dict:
    return json.loads(Path(path).read_text())


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #aaa; }
figure { margin: 1.5em 0; } img { max-width: 100%; } figcaption { font-size: 0.9em; color: #444; }
table.table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
table.table td, table.table th { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
.note { background: #fff8e0; padding: 0.5em 1em; border-left: 4px solid #e0b000; }
"""


def _answers_section(runs: pd.DataFrame, floor: Mapping, best_cell_figure, dataset: str) -> str:
    """The answer table of one dataset: slopes over log T, best schedule per T, the verdicts on
    report 003's claims, and the best cell against the quality bars."""
    from .summary import best_cell, best_schedule_per_T, claim_verdicts, slopes_over_log_T

    if "classifier_fid" not in runs or not runs["classifier_fid"].notna().any():
        return f"<p>{html.escape(dataset)}: no run was scored.</p>"
    seeds = runs.groupby(["schedule", "T"])["seed"].nunique()
    n_samples = floor.get("n_generated")
    resamples = runs.get("bootstrap_resamples", pd.Series(dtype=float)).max()
    out = (
        f"<h3>{html.escape(dataset)}</h3><p class='note'>Every interval is 95 %: over seeds a "
        f"Student-t interval with n = {seeds.min()}"
        + (f"–{seeds.max()}" if seeds.max() != seeds.min() else "")
        + f" seed{'s' if seeds.max() > 1 else ''} per cell; {n_samples} samples per run, scored with the domain classifier's "
        "features against the test set. The spread that the finite samples alone cause is a "
        f"bootstrap over the samples within each run ({resamples:.0f} resamples) and is shown "
        "apart from the seed spread in the table and figures below.</p>"
    )
    slopes = pd.concat(
        [slopes_over_log_T(runs, m) for m in ("classifier_fid", "classifier_kid_mean")]
    )
    slopes = pd.DataFrame(
        {
            "schedule": slopes["schedule"],
            "metric": slopes["metric"].map(_metric_name),
            "change per doubling of T [95 % CI]": [
                _interval(r.slope, r.lo, r.hi) for r in slopes.itertuples()
            ],
            "points (T x seeds)": slopes["n"],
            "reading": [_slope_reading(r.lo, r.hi) for r in slopes.itertuples()],
        }
    )
    out += "<h4>How FID and KID change with T (OLS over log2 T, every seed's point)</h4>"
    out += _table(slopes)
    best = best_schedule_per_T(runs, "classifier_fid")
    out += "<h4>Best schedule at each T (lowest mean FID)</h4>" + _table(_best_table(best))
    claims = claim_verdicts(runs)
    out += "<h4>Report 003's claims</h4>" + claims.to_html(index=False, border=0, classes="table")
    out += _best_cell_html(best_cell(runs, floor), best_cell_figure)
    return out


def _metric_name(metric: str) -> str:
    from .plots.metrics import metric_label

    return metric_label(metric).split(" (")[0]


def _interval(value, lo=float("nan"), hi=float("nan")) -> str:
    from .plots.metrics import format_interval

    return format_interval(value, lo, hi)


def _slope_reading(lo: float, hi: float) -> str:
    if not (pd.notna(lo) and pd.notna(hi)):
        return "no interval (too few points)"
    if hi < 0:
        return "falls as T grows"
    if lo > 0:
        return "rises as T grows"
    return "no trend told apart from 0"


def _best_table(best: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "T": best["T"],
            "best": best["best"],
            "FID [95 % CI]": [
                _interval(r.best_mean, r.best_lo, r.best_hi) for r in best.itertuples()
            ],
            "runner-up": best["runner_up"],
            "runner-up FID [95 % CI]": [
                _interval(r.runner_up_mean, r.runner_up_lo, r.runner_up_hi)
                for r in best.itertuples()
            ],
            "intervals overlap (not settled)": best["overlap"].map({True: "yes", False: "no"}),
        }
    )


def _best_cell_html(best: Mapping, figure) -> str:
    def verdict(passed: bool) -> str:
        return "<b>pass</b>" if passed else "<b>fail</b>"

    rows = pd.DataFrame(
        [
            {
                "bar": "IS ≥ 0.8 × real IS",
                "best cell (mean [95 % CI])": _interval(**_triple(best["is"])),
                "real data at the same n": f"{best['floor_is']:.3g}",
                "threshold": f"{best['is_bar']:.3g}",
                "result": verdict(best["passes_is"]),
            },
            {
                "bar": "FID ≤ 3 × real-vs-real floor",
                "best cell (mean [95 % CI])": _interval(**_triple(best["fid"])),
                "real data at the same n": f"{best['floor_fid']:.3g}",
                "threshold": f"{best['fid_bar']:.3g}",
                "result": verdict(best["passes_fid"]),
            },
        ]
    )
    out = (
        f"<h4>Best cell: {html.escape(str(best['schedule']))}, T = {best['T']} "
        f"(seeds {', '.join(map(str, best['seeds']))}; {best['n_samples']} samples each)</h4>"
        + rows.to_html(index=False, border=0, classes="table", escape=False)
    )
    return out + (_image(figure) if figure else "")


def _triple(interval: Mapping) -> dict:
    return {"value": interval["mean"], "lo": interval["lo"], "hi": interval["hi"]}


def _grid_section(config: Mapping) -> str:
    grid = config["grid"]
    schedules = pd.DataFrame(
        [
            {
                "schedule": label,
                "beta_schedule": d["beta_schedule"],
                "params": json.dumps(d.get("params", {})),
            }
            for label, d in config["schedules"].items()
            if label in grid["schedules"]
        ]
    )
    return (
        f"<p>Datasets: {', '.join(config['datasets'])}. Schedules: {', '.join(grid['schedules'])}. "
        f"T: {', '.join(map(str, grid['T']))}. Seeds: {', '.join(map(str, grid['seeds']))}. "
        f"{len(grid['schedules']) * len(grid['T']) * len(grid['seeds'])} runs per dataset, "
        f"{config['training']['steps']} training steps each, "
        f"{config['sampling']['num_samples']} samples per run "
        f"({config['sampling'].get('sampler', 'ancestral')} sampler).</p>" + _table(schedules)
    )


def _quality_section(runs, floor, classifier, status, figures, n_samples) -> str:
    from .plots.metrics import floor_band, metrics_summary_table

    order = ["classifier_fid", "classifier_kid_mean", "classifier_is_mean"]
    order += ["inception_fid", "inception_kid_mean", "inception_is_mean"]
    metrics = [m for m in order if m in runs and pd.api.types.is_numeric_dtype(runs[m])]
    summary = metrics_summary_table(runs, metrics) if metrics else pd.DataFrame()
    floor_rows = pd.DataFrame(
        [
            {
                "metric": _metric_name(m),
                "real vs real [± 1.96 bootstrap sd]": _interval(
                    **floor_band(floor, m) if m in floor else {"value": float("nan")}
                ),
                "sd over samples": floor.get(f"{m}_boot_sd", float("nan")),
            }
            for m in metrics
        ]
    )
    return (
        f"<p>Every number compares {n_samples} generated images with the real test set. The domain "
        f"classifier reached a test accuracy of {classifier.get('test_accuracy', float('nan')):.3f}. "
        "FID is biased upwards at small n; KID is unbiased; both are shown next to the floor at "
        "the same n.</p><p class='note'>Inception-v3 metrics: "
        + html.escape(str(status.get("reason") or "computed with torch-fidelity's weights"))
        + "</p>"
        + "".join(_image(p) for p in figures)
        + "<h3>Mean [95 % t-interval over seeds], sd over seeds, sd over samples (bootstrap)</h3>"
        + (summary.reset_index().pipe(_table) if not summary.empty else "<p>No metric.</p>")
        + "<h3>Real-data floor (two disjoint real sets of the same size)</h3>"
        + _table(floor_rows)
        + "<h3>Every run</h3>"
        + _table(runs)
    )


def build_report(
    out_path: str | Path,
    *,
    config: Mapping,
    metrics_tables: Sequence[str | Path],
    floors: Sequence[str | Path],
    classifiers: Sequence[str | Path],
    inception_status: str | Path,
    figures: Sequence[str | Path],
    thesis_figures: Sequence[str | Path],
    closest_points: str | Path,
    thesis_comparison: str | Path,
    benchmarks: Sequence[str | Path] = (),
    closeness_explanation: str = "",
) -> Path:
    """Write the HTML report to ``out_path`` from the files of a finished study.

    It opens with the answers (per dataset: FID / KID against T, the best schedule per T, the
    verdicts on report 003's claims, the best cell against the quality bars) and the thesis's
    closeness findings next to ours; the figures and full tables follow.
    """
    status = _read_json(inception_status)
    answers, quality_sections = "", []
    for metrics_path, floor_path, classifier_path in zip(
        metrics_tables, floors, classifiers, strict=True
    ):
        dataset = Path(metrics_path).parent.name
        runs = pd.read_csv(metrics_path)
        # metrics.json writes NaN (a metric not computed) as null
        floor = {k: float("nan") if v is None else v for k, v in _read_json(floor_path).items()}
        ours = [p for p in figures if Path(p).parent.name == dataset]
        best_figure = next((p for p in ours if Path(p).stem == "best_cell"), None)
        answers += _answers_section(runs, floor, best_figure, dataset)
        quality_sections += _dataset_sections(
            dataset, runs, floor, _read_json(classifier_path), status, ours, config
        )
    comparison = _table(pd.read_csv(thesis_comparison))
    answers += "<h3>Forward process: closeness to noise, next to the thesis</h3>" + comparison
    if closeness_explanation:
        answers += f"<div class='note'>{closeness_explanation}</div>"
    thesis_html = "".join(_image(p) for p in thesis_figures)
    thesis_html += "<h3>Closest point to noise</h3>" + _table(pd.read_csv(closest_points))
    sections = [
        ("Answers", answers),
        ("The grid", _grid_section(config)),
        ("Forward process: schedules and closeness to noise", thesis_html),
        *quality_sections,
    ]
    if benchmarks:
        sections.append(("Run times", _run_times(benchmarks)))
    config_text = html.escape(yaml.safe_dump(dict(config), sort_keys=False))
    sections.append(("Configuration", f"<pre>{config_text}</pre>"))
    return _write_page(out_path, sections)


def _dataset_sections(dataset, runs, floor, classifier, status, figures, config) -> list:
    training_stems = ("loss_curves", "training_progress")
    sample_stems = ("sample_grids", "reconstruction")
    training = [p for p in figures if Path(p).stem in training_stems]
    samples = [p for p in figures if Path(p).stem in sample_stems]
    quality = [
        p for p in figures if Path(p).stem not in (*training_stems, *sample_stems, "best_cell")
    ]
    n_samples = config["sampling"]["num_samples"]
    return [
        (f"{dataset}: training", "".join(_image(p) for p in training)),
        (f"{dataset}: samples", "".join(_image(p) for p in samples)),
        (
            f"{dataset}: sample quality",
            _quality_section(runs, floor, classifier, status, quality, n_samples),
        ),
    ]


def _run_times(benchmarks) -> str:
    from .results import read_benchmarks

    bench = read_benchmarks(benchmarks)
    per_step = (
        bench.groupby(["dataset", "step"])["seconds"]
        .agg(["count", "sum", "mean", "max"])
        .reset_index()
    )
    return (
        "<p>Wall-clock seconds per job, from Snakemake's benchmark files.</p>"
        + _table(per_step, "{:.1f}")
        + _table(bench, "{:.1f}")
    )


def _write_page(out_path, sections) -> Path:
    toc = "".join(
        f'<li><a href="#s{i}">{html.escape(title)}</a></li>'
        for i, (title, _) in enumerate(sections)
    )
    body = "".join(
        f'<h2 id="s{i}">{html.escape(t)}</h2>{content}' for i, (t, content) in enumerate(sections)
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>DDPM schedule study</title>"
        f"<style>{STYLE}</style></head><body><h1>DDPM schedule study</h1>"
        f"<p>How the noise schedule and the number of diffusion steps T shape the forward process "
        f"and the quality of the samples. Generated {stamp}.</p><ul>{toc}</ul>{body}</body></html>"
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    return out_path
