"""The answers of one dataset: how FID and KID change with T, the best schedule per T, the
verdicts on report 003's claims, and the best cell against the quality bars."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from .page import figures_html, table_html


def answers_section(
    dataset: str,
    runs: pd.DataFrame,
    floor: Mapping,
    figures: Sequence[tuple[str, Path]],
    after_claims: str = "",
) -> str:
    """The answer table of ``dataset`` from its runs table and real-data floor, followed by
    the ``(name, png)`` figures of the "answers" section (the best cell's samples);
    ``after_claims`` is HTML put right after the verdicts on report 003's claims."""
    from ..verdicts import best_cell, best_schedule_per_T, claim_verdicts

    if "classifier_fid" not in runs or not runs["classifier_fid"].notna().any():
        return f"<p>{html.escape(dataset)}: no run was scored.</p>"
    out = f"<h3>{html.escape(dataset)}</h3>" + _intervals_note(runs, floor)
    out += "<h4>How FID and KID change with T (OLS over log2 T, every seed's point)</h4>"
    out += table_html(slopes_table(runs))
    best = best_schedule_per_T(runs, "classifier_fid")
    out += "<h4>Best schedule at each T (lowest mean FID)</h4>" + table_html(best_table(best))
    claims = claim_verdicts(runs)
    out += "<h4>Report 003's claims</h4>" + claims.to_html(index=False, border=0, classes="table")
    out += after_claims
    return out + best_cell_html(best_cell(runs, floor)) + figures_html(figures)


def _intervals_note(runs: pd.DataFrame, floor: Mapping) -> str:
    """What every interval of the section means: seeds per cell, samples, bootstrap size."""
    seeds = runs.groupby(["schedule", "T"])["seed"].nunique()
    n_samples = floor.get("n_generated")
    resamples = runs.get("bootstrap_resamples", pd.Series(dtype=float)).max()
    return (
        "<p class='note'>Every interval is 95 %: over seeds a "
        f"Student-t interval with n = {seeds.min()}"
        + (f"–{seeds.max()}" if seeds.max() != seeds.min() else "")
        + f" seed{'s' if seeds.max() > 1 else ''} per cell; {n_samples} samples per run, scored "
        "with the domain classifier's features against the test set. The spread that the finite "
        f"samples alone cause is a bootstrap over the samples within each run ({resamples:.0f} "
        "resamples) and is shown apart from the seed spread in the table and figures below.</p>"
    )


def slopes_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The change of FID and KID per doubling of T, per schedule, with its reading."""
    from ..verdicts import slopes_over_log_T

    slopes = pd.concat(
        [slopes_over_log_T(runs, m) for m in ("classifier_fid", "classifier_kid_mean")]
    )
    return pd.DataFrame(
        {
            "schedule": slopes["schedule"],
            "metric": slopes["metric"].map(metric_name),
            "change per doubling of T [95 % CI]": [
                interval(r.slope, r.lo, r.hi) for r in slopes.itertuples()
            ],
            "points (T x seeds)": slopes["n"],
            "reading": [slope_reading(r.lo, r.hi) for r in slopes.itertuples()],
        }
    )


def metric_name(metric: str) -> str:
    from ..plots.metrics import metric_label

    return metric_label(metric).split(" (")[0]


def interval(value, lo=float("nan"), hi=float("nan")) -> str:
    from ..plots.metrics import format_interval

    return format_interval(value, lo, hi)


def slope_reading(lo: float, hi: float) -> str:
    if not (pd.notna(lo) and pd.notna(hi)):
        return "no interval (too few points)"
    if hi < 0:
        return "falls as T grows"
    if lo > 0:
        return "rises as T grows"
    return "no trend told apart from 0"


def best_table(best: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "T": best["T"],
            "best": best["best"],
            "FID [95 % CI]": [
                interval(r.best_mean, r.best_lo, r.best_hi) for r in best.itertuples()
            ],
            "runner-up": best["runner_up"],
            "runner-up FID [95 % CI]": [
                interval(r.runner_up_mean, r.runner_up_lo, r.runner_up_hi)
                for r in best.itertuples()
            ],
            "intervals overlap (not settled)": best["overlap"].map({True: "yes", False: "no"}),
        }
    )


def best_cell_html(best: Mapping) -> str:
    """The best cell against the IS and FID bars."""

    def verdict(passed: bool) -> str:
        return "<b>pass</b>" if passed else "<b>fail</b>"

    rows = pd.DataFrame(
        [
            {
                "bar": "IS ≥ 0.8 × real IS",
                "best cell (mean [95 % CI])": interval(**_triple(best["is"])),
                "real data at the same n": f"{best['floor_is']:.3g}",
                "threshold": f"{best['is_bar']:.3g}",
                "result": verdict(best["passes_is"]),
            },
            {
                "bar": "FID ≤ 3 × real-vs-real floor",
                "best cell (mean [95 % CI])": interval(**_triple(best["fid"])),
                "real data at the same n": f"{best['floor_fid']:.3g}",
                "threshold": f"{best['fid_bar']:.3g}",
                "result": verdict(best["passes_fid"]),
            },
        ]
    )
    return (
        f"<h4>Best cell: {html.escape(str(best['schedule']))}, T = {best['T']} "
        f"(seeds {', '.join(map(str, best['seeds']))}; {best['n_samples']} samples each)</h4>"
        + rows.to_html(index=False, border=0, classes="table", escape=False)
    )


def _triple(values: Mapping) -> dict:
    return {"value": values["mean"], "lo": values["lo"], "hi": values["hi"]}
