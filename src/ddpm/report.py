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
        "FID against T, one line per schedule, mean and standard deviation over seeds. The band is "
        "the floor: the same metric between two disjoint real sets of the same size."
    ),
    "kid_vs_T": "KID against T (unbiased at small sample sizes), with the real-data floor.",
    "is_vs_T": "Inception Score (from the named feature extractor) against T, with the real-data value.",
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
    """Write the HTML report to ``out_path`` from the files of a finished study."""
    from .plots.metrics import metrics_summary_table
    from .results import read_benchmarks

    sections: list[tuple[str, str]] = []
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
    sections.append(
        (
            "The grid",
            f"<p>Datasets: {', '.join(config['datasets'])}. Schedules: {', '.join(grid['schedules'])}. "
            f"T: {', '.join(map(str, grid['T']))}. Seeds: {', '.join(map(str, grid['seeds']))}. "
            f"{len(grid['schedules']) * len(grid['T']) * len(grid['seeds'])} runs per dataset, "
            f"{config['training']['steps']} training steps each, "
            f"{config['sampling']['num_samples']} samples per run "
            f"({config['sampling'].get('sampler', 'ancestral')} sampler).</p>" + _table(schedules),
        )
    )

    thesis_html = "".join(_image(p) for p in thesis_figures)
    closest = pd.read_csv(closest_points)
    comparison = pd.read_csv(thesis_comparison)
    thesis_html += "<h3>Closest point to noise</h3>" + _table(closest)
    thesis_html += "<h3>Next to the thesis's findings</h3>" + _table(comparison)
    if closeness_explanation:
        thesis_html += f"<div class='note'>{closeness_explanation}</div>"
    sections.append(("Forward process: schedules and closeness to noise", thesis_html))

    status = _read_json(inception_status)
    for dataset_metrics, floor_path, classifier_path in zip(
        metrics_tables, floors, classifiers, strict=True
    ):
        dataset = Path(dataset_metrics).parent.name
        runs = pd.read_csv(dataset_metrics)
        floor = _read_json(floor_path)
        classifier = _read_json(classifier_path)
        dataset_figures = [p for p in figures if Path(p).parent.name == dataset]
        training = [
            p for p in dataset_figures if Path(p).stem in ("loss_curves", "training_progress")
        ]
        samples = [p for p in dataset_figures if Path(p).stem in ("sample_grids", "reconstruction")]
        quality = [p for p in dataset_figures if p not in training and p not in samples]
        sections.append((f"{dataset}: training", "".join(_image(p) for p in training)))
        sections.append((f"{dataset}: samples", "".join(_image(p) for p in samples)))

        metric_columns = [c for c in runs.columns if c.startswith(("classifier_", "inception_"))]
        numeric = [c for c in metric_columns if pd.api.types.is_numeric_dtype(runs[c])]
        counts = (
            f"<p>Every number below compares {config['sampling']['num_samples']} generated images "
            f"with the real test set. The domain classifier reached a test accuracy of "
            f"{classifier.get('test_accuracy', float('nan')):.3f}.</p>"
        )
        inception_note = (
            "<p class='note'>Inception-v3 metrics: "
            + html.escape(str(status.get("reason") or "computed with torch-fidelity's weights"))
            + "</p>"
        )
        floor_table = pd.DataFrame(
            [{k: v for k, v in floor.items() if not isinstance(v, dict | list)}]
        )
        summary = metrics_summary_table(runs, numeric) if numeric else pd.DataFrame()
        sections.append(
            (
                f"{dataset}: sample quality",
                counts
                + inception_note
                + "".join(_image(p) for p in quality)
                + "<h3>Mean ± std over seeds</h3>"
                + (_table(summary) if not summary.empty else "<p>No metric was computed.</p>")
                + "<h3>Real-data floor (two disjoint real sets of the same size)</h3>"
                + _table(floor_table)
                + "<h3>Every run</h3>"
                + _table(runs),
            )
        )

    if benchmarks:
        bench = read_benchmarks(benchmarks)
        per_step = (
            bench.groupby(["dataset", "step"])["seconds"]
            .agg(["count", "sum", "mean", "max"])
            .reset_index()
        )
        sections.append(
            (
                "Run times",
                "<p>Wall-clock seconds per job, from Snakemake's benchmark files.</p>"
                + _table(per_step, "{:.1f}")
                + _table(bench, "{:.1f}"),
            )
        )

    sections.append(
        (
            "Configuration",
            f"<pre>{html.escape(yaml.safe_dump(dict(config), sort_keys=False))}</pre>",
        )
    )

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
