"""The study's answers: how FID / KID change with T, the best schedule at each T, the claims of
report 003 with a verdict each, and whether the best cell's samples pass the quality bars.

Every function takes the built tables (the runs table of ``metrics.csv``, one row per run, and
the floor record of ``floor.json``), never the study config. Every interval is 95 %.

Verdict rules (stated in the report next to the verdicts):

- a claim that an effect has a sign ("sigmoid's loss is worse"): **holds** if the interval of the
  effect excludes 0 on the claimed side, **does not hold** if it excludes 0 on the other side,
  **cannot be told apart at this n** if it contains 0;
- a claim that an effect is small ("T has little effect"): **holds** if the interval lies inside
  ± the margin, **does not hold** if it lies wholly outside, **cannot be told apart** otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from . import ConfigError
from .stats import ols_slope, spearman_with_bootstrap, t_interval

__all__ = [
    "CANNOT_TELL",
    "DOES_NOT_HOLD",
    "HOLDS",
    "QUALITY_BARS",
    "RELATIVE_MARGIN",
    "best_cell",
    "best_schedule_per_T",
    "claim_verdicts",
    "coding_summary",
    "coding_verdicts",
    "effect_verdict",
    "prediction_verdicts",
    "sign_verdict",
    "slopes_over_log_T",
]

HOLDS, DOES_NOT_HOLD, CANNOT_TELL = "holds", "does not hold", "cannot be told apart at this n"

RELATIVE_MARGIN = 0.10
"""What "nearly the same" / "little effect" allows: a change over the whole grid of T of at most
10 % of the mean value."""

RHO_MARGIN = 0.5
"""The loss "does not predict" image quality if the rank correlation is surely below this."""

MIN_CELLS_FOR_RHO = 6
"""Fewer grid cells than this give no verdict on the rank correlation."""

QUALITY_BARS = {"is_fraction_of_real": 0.8, "fid_multiple_of_floor": 3.0}
"""The best cell's samples count as recognisable digits: IS >= 0.8 x the real data's IS and
FID <= 3 x the real-vs-real floor, both at the same number of images."""


def sign_verdict(lo: float, hi: float, claimed_sign: int = 1) -> str:
    """Verdict on "the effect has ``claimed_sign``" from its interval [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return CANNOT_TELL
    lo, hi = (lo, hi) if claimed_sign > 0 else (-hi, -lo)
    if lo > 0:
        return HOLDS
    if hi < 0:
        return DOES_NOT_HOLD
    return CANNOT_TELL


def effect_verdict(lo: float, hi: float, margin: float) -> str:
    """Verdict on "the effect is within ± ``margin``" from its interval [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(margin)):
        return CANNOT_TELL
    if -margin <= lo and hi <= margin:
        return HOLDS
    if lo > margin or hi < -margin:
        return DOES_NOT_HOLD
    return CANNOT_TELL


def _combine(verdicts: Sequence[str], need_all: bool = True) -> str:
    """All parts hold -> holds; any part fails -> does not hold; otherwise cannot tell."""
    if DOES_NOT_HOLD in verdicts:
        return DOES_NOT_HOLD
    if need_all and verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return CANNOT_TELL


def _fmt(value: float, lo: float | None = None, hi: float | None = None) -> str:
    from .plots.metrics import format_interval

    return format_interval(value, math.nan if lo is None else lo, math.nan if hi is None else hi)


def slopes_over_log_T(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per schedule: the OLS slope of ``metric`` over log2 T (change per doubling of T), fitted
    to every seed's point, with its t interval; and the change over the grid's range of T."""
    rows = []
    for schedule, group in runs.groupby("schedule", sort=False):
        group = group[group[metric].notna()]
        fit = ols_slope(np.log2(group["T"].to_numpy(dtype=float)), group[metric])
        doublings = float(np.log2(group["T"].max() / group["T"].min())) if len(group) else 0.0
        rows.append(
            {
                "schedule": schedule,
                "metric": metric,
                "slope": fit["slope"],
                "lo": fit["lo"],
                "hi": fit["hi"],
                "n": fit["n"],
                "doublings": doublings,
                "mean": float(group[metric].mean()),
            }
        )
    return pd.DataFrame(rows)


def best_schedule_per_T(runs: pd.DataFrame, metric: str, lower_is_better: bool = True):
    """Per T: the schedule with the best mean over seeds, its t interval, the runner-up's, and
    whether the two intervals overlap (then the ranking is not settled at this n)."""
    rows = []
    for t, group in runs.groupby("T"):
        cells = {schedule: t_interval(part[metric]) for schedule, part in group.groupby("schedule")}
        ranked = sorted(cells, key=lambda s: cells[s]["mean"], reverse=not lower_is_better)
        ranked = [s for s in ranked if math.isfinite(cells[s]["mean"])]
        if not ranked:
            continue
        best = cells[ranked[0]]
        second = cells[ranked[1]] if len(ranked) > 1 else None
        overlap = second is not None and not (
            best["hi"] < second["lo"] or second["hi"] < best["lo"]
        )
        rows.append(
            {
                "T": int(t),
                "best": ranked[0],
                "best_mean": best["mean"],
                "best_lo": best["lo"],
                "best_hi": best["hi"],
                "n": best["n"],
                "runner_up": ranked[1] if second else None,
                "runner_up_mean": second["mean"] if second else math.nan,
                "runner_up_lo": second["lo"] if second else math.nan,
                "runner_up_hi": second["hi"] if second else math.nan,
                "overlap": bool(overlap) or not math.isfinite(best["lo"]),
            }
        )
    return pd.DataFrame(rows)


def _paired_differences(runs, metric, schedule, other, t_values=None) -> dict:
    """``schedule`` minus ``other`` for each (T, seed) both ran, with the t interval of the mean
    difference (pairs share T and seed, so the grid's T effect cancels)."""
    data = runs if t_values is None else runs[runs["T"].isin(t_values)]
    wide = data.pivot_table(index=["T", "seed"], columns="schedule", values=metric)
    if schedule not in wide or other not in wide:
        return t_interval([])
    return t_interval((wide[schedule] - wide[other]).dropna())


def _claim(claim: str, verdict: str, numbers: str, rule: str) -> dict:
    return {"claim": claim, "verdict": verdict, "numbers": numbers, "rule": rule}


def _little_change(runs: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """Per (schedule, metric): the change over the grid's T range against the margin."""
    verdicts, numbers = [], []
    for metric in metrics:
        if metric not in runs or not runs[metric].notna().any():
            continue
        for row in slopes_over_log_T(runs, metric).itertuples(index=False):
            margin = RELATIVE_MARGIN * abs(row.mean)
            change = [v * row.doublings for v in (row.slope, row.lo, row.hi)]
            verdict = effect_verdict(change[1], change[2], margin)
            verdicts.append(verdict)
            numbers.append(
                f"{row.schedule} {_short(metric)}: {_fmt(*change)} over the T range "
                f"(margin ± {margin:.3g}; {verdict})"
            )
    return verdicts, numbers


def _short(metric: str) -> str:
    """``classifier_kid_mean`` -> ``KID``; ``final_loss`` -> ``final loss``."""
    if metric == "final_loss":
        return "final loss"
    return metric.split("_", 1)[1].removesuffix("_mean").upper()


def _directional(runs, metric, schedule, t_values=None) -> tuple[list[str], list[str]]:
    """``schedule`` is worse (higher ``metric``) than every other schedule, pair by pair."""
    verdicts, numbers = [], []
    for other in sorted(set(runs["schedule"]) - {schedule}):
        diff = _paired_differences(runs, metric, schedule, other, t_values)
        verdicts.append(sign_verdict(diff["lo"], diff["hi"], +1))
        numbers.append(
            f"{schedule} − {other}: {_fmt(diff['mean'], diff['lo'], diff['hi'])} (n = {diff['n']})"
        )
    return verdicts, numbers


def claim_verdicts(runs: pd.DataFrame, fid: str = "classifier_fid") -> pd.DataFrame:
    """Report 003's claims, each with a verdict, the numbers behind it and the rule applied."""
    kid = fid.removesuffix("fid") + "kid_mean"
    margin_rule = (
        f"holds if the 95 % interval of the change over the grid's T range (OLS slope over log2 T "
        f"x the number of doublings) lies within ± {RELATIVE_MARGIN:.0%} of the schedule's mean, "
        "does not hold if it lies wholly outside, else cannot be told apart"
    )
    sign_rule = (
        "paired by (T, seed); holds if every difference's 95 % t-interval is above 0, does not "
        "hold if any is below 0, else cannot be told apart"
    )
    rows = []
    verdicts, numbers = _little_change(runs, ["final_loss"])
    rows.append(
        _claim(
            "the loss is nearly the same for every T",
            _combine(verdicts),
            "; ".join(numbers),
            margin_rule,
        )
    )
    verdicts, numbers = _directional(runs, "final_loss", "sigmoid")
    rows.append(
        _claim(
            "sigmoid's loss is slightly worse than linear's and cosine's",
            _combine(verdicts),
            "; ".join(numbers),
            sign_rule,
        )
    )
    small_t = sorted(runs["T"].unique())[:2]
    verdicts, numbers = _directional(runs, fid, "cosine", small_t)
    rows.append(
        _claim(
            f"cosine's images are worse at small T (T = {', '.join(map(str, small_t))}; FID)",
            _combine(verdicts),
            "; ".join(numbers),
            sign_rule,
        )
    )
    verdicts, numbers = _little_change(runs, [fid, kid])
    rows.append(
        _claim(
            "T has little effect on image quality (FID and KID)",
            _combine(verdicts),
            "; ".join(numbers),
            margin_rule,
        )
    )
    rows.append(_loss_predicts_quality(runs, fid))
    return pd.DataFrame(rows)


def _loss_predicts_quality(runs: pd.DataFrame, fid: str) -> dict:
    cells = runs.groupby(["schedule", "T"])[["final_loss", fid]].mean().dropna()
    rho = spearman_with_bootstrap(cells["final_loss"], cells[fid])
    if rho["n"] < MIN_CELLS_FOR_RHO:
        verdict = CANNOT_TELL  # resampling a handful of cells gives no usable interval
    elif math.isfinite(rho["lo"]) and rho["lo"] > 0:
        verdict = DOES_NOT_HOLD
    elif math.isfinite(rho["hi"]) and rho["hi"] < RHO_MARGIN:
        verdict = HOLDS
    else:
        verdict = CANNOT_TELL
    return _claim(
        "the loss does not predict image quality",
        verdict,
        f"Spearman ρ(final loss, FID) over {rho['n']} cells (seed means): "
        f"{_fmt(rho['rho'], rho['lo'], rho['hi'])}",
        "interval: bootstrap over cells; does not hold if it is above 0 (a lower loss ranks a "
        f"lower FID), holds if it is below {RHO_MARGIN}, else (or with fewer than "
        f"{MIN_CELLS_FOR_RHO} cells) cannot be told apart",
    )


def best_cell(runs: pd.DataFrame, floor: Mapping, extractor: str = "classifier") -> dict:
    """The cell (schedule, T) with the lowest mean FID over seeds, and the quality bars: its mean
    IS against ``0.8 x`` the floor's IS and its mean FID against ``3 x`` the floor's FID (the
    floor: real images scored at the same n)."""
    fid, isc = f"{extractor}_fid", f"{extractor}_is_mean"
    means = runs.groupby(["schedule", "T"])[[fid, isc]].mean().dropna()
    if means.empty:
        raise ConfigError(f"no run has both {fid} and {isc}; score the runs first")
    schedule, t = means[fid].idxmin()
    cell = runs[(runs["schedule"] == schedule) & (runs["T"] == t)]
    fid_interval, is_interval = t_interval(cell[fid]), t_interval(cell[isc])
    is_bar = QUALITY_BARS["is_fraction_of_real"] * float(floor[isc])
    fid_bar = QUALITY_BARS["fid_multiple_of_floor"] * float(floor[fid])
    return {
        "schedule": schedule,
        "T": int(t),
        "seeds": sorted(int(s) for s in cell["seed"]),
        "median_seed": int(cell.loc[(cell[fid] - cell[fid].median()).abs().idxmin(), "seed"]),
        "fid": fid_interval,
        "is": is_interval,
        "floor_fid": float(floor[fid]),
        "floor_is": float(floor[isc]),
        "n_samples": floor.get("n_generated"),
        "is_bar": is_bar,
        "fid_bar": fid_bar,
        "passes_is": is_interval["mean"] >= is_bar,
        "passes_fid": fid_interval["mean"] <= fid_bar,
    }


# --- terminal SNR ------------------------------------------------------------------------------
TERMINAL_KL_FLAG_BITS = 1e-3
"""x_T counts as far from N(0, I) when KL(q(x_T | x_0) || N(0, I)) exceeds this many bits per
dimension (for an x_0 of mean square 1). At 1e-3 bits per dimension an image of about 1,000
pixels (MNIST's 784) keeps about a bit of evidence of x_0 at T, the amount the closeness analysis
uses for "short of noise" (its total-KL threshold)."""


def terminal_snr(schedule_table: pd.DataFrame) -> pd.DataFrame:
    """One row per (schedule, T) of the schedule table (``results/analysis/schedules.csv``): SNR(T),
    log-SNR(T), alpha_bar_T and KL(q(x_T | x_0) || N(0, I)) in bits per dimension, with
    ``far_from_noise`` where that KL exceeds :data:`TERMINAL_KL_FLAG_BITS`."""
    last = schedule_table[schedule_table["t"] == schedule_table["T"]]
    return pd.DataFrame(
        {
            "schedule": last["schedule"].to_numpy(),
            "T": last["T"].astype(int).to_numpy(),
            "snr_T": last["snr"].to_numpy(),
            "log_snr_T": last["log_snr"].to_numpy(),
            "alpha_bar_T": last["alpha_bar"].to_numpy(),
            "kl_bits_per_dim_T": last["kl_bits_per_dim"].to_numpy(),
            "far_from_noise": (last["kl_bits_per_dim"] > TERMINAL_KL_FLAG_BITS).to_numpy(),
        }
    )


def terminal_snr_readings(
    runs: pd.DataFrame, terminal: pd.DataFrame, fid: str = "classifier_fid"
) -> pd.DataFrame:
    """Where the terminal SNR could explain part of an FID difference: at each T of the grid,
    every schedule whose x_T is far from noise against every one whose x_T is not, with the
    paired (by seed) FID difference flagged minus unflagged and its 95 % interval.

    A sampler starts from N(0, I); a schedule that leaves signal at T trains on x_T that are
    not N(0, I). So the flagged schedule being worse (interval above 0) is what a terminal-SNR
    effect would look like, though in a grid where terminal SNR goes with the schedule it cannot
    be told from the schedule's other differences; the flagged schedule being better (interval
    below 0) means the terminal SNR does not explain the difference.
    """
    flagged = terminal.set_index(["schedule", "T"])["far_from_noise"]
    rows = []
    for t, group in runs.groupby("T"):
        present = [s for s in dict.fromkeys(group["schedule"]) if (s, t) in flagged.index]
        far = [s for s in present if flagged[(s, t)]]
        near = [s for s in present if not flagged[(s, t)]]
        for a in far:
            for b in near:
                diff = _paired_differences(runs, fid, a, b, [t])
                if diff["lo"] > 0:
                    reading = "the schedule far from noise at T is worse: may explain part"
                elif diff["hi"] < 0:
                    reading = "the schedule far from noise at T is better: does not explain it"
                else:
                    reading = "no FID difference told apart at this n"
                rows.append(
                    {
                        "T": int(t),
                        "far from noise at T": a,
                        "close to noise at T": b,
                        "FID difference (far − close)": _fmt(diff["mean"], diff["lo"], diff["hi"]),
                        "n": diff["n"],
                        "reading": reading,
                    }
                )
    return pd.DataFrame(rows)


# --- dataset variants (the same images at another size) ----------------------------------------
def variant_comparison(
    runs: Mapping[str, pd.DataFrame],
    variants: Mapping[str, str],
    reference_schedule: str,
    metric: str = "classifier_fid",
    lower_is_better: bool = True,
) -> pd.DataFrame:
    """Does a variant of a dataset (the same images enlarged) reach the quality of the dataset
    itself? ``runs`` maps each dataset to its runs table, ``variants`` each variant to the
    dataset it is made from; the reference is the base dataset's ``reference_schedule`` at the
    same T.

    One row per cell (schedule, T) of every variant and of its base (the base's other
    schedules are the control: a schedule that also beat the reference at the base size would
    not be about the size). Columns: dataset, schedule, T, the cell's mean with its t interval,
    the difference to the reference with its Welch interval, ``recovers`` (holds when that
    interval lies within ± :data:`RELATIVE_MARGIN` of the reference's mean) and ``worse`` (holds
    when the cell is surely worse than the reference).
    """
    from .stats import welch_difference

    rows = []
    for variant, base in variants.items():
        if variant not in runs or base not in runs:
            continue
        reference = runs[base][runs[base]["schedule"] == reference_schedule]
        for dataset in (base, variant):
            for (schedule, t), cell in runs[dataset].groupby(["schedule", "T"], sort=False):
                if dataset == base and schedule == reference_schedule:
                    continue
                ref = reference[reference["T"] == t][metric]
                own = t_interval(cell[metric])
                diff = welch_difference(cell[metric], ref)
                margin = RELATIVE_MARGIN * abs(float(ref.mean()))
                worse = sign_verdict(diff["lo"], diff["hi"], 1 if lower_is_better else -1)
                rows.append(
                    {
                        "dataset": dataset,
                        "schedule": schedule,
                        "T": int(t),
                        "metric": metric,
                        "mean": own["mean"],
                        "lo": own["lo"],
                        "hi": own["hi"],
                        "reference_mean": float(ref.mean()),
                        "difference": diff["diff"],
                        "difference_lo": diff["lo"],
                        "difference_hi": diff["hi"],
                        "margin": margin,
                        "recovers": effect_verdict(diff["lo"], diff["hi"], margin),
                        "worse": worse,
                    }
                )
    return pd.DataFrame(rows)


# --- progressive coding (Ho et al. sec. 4.3) ------------------------------------------------------
CODING_MOST = 0.5
""""Most of the rate" and "most of the distortion": more than half."""


def coding_summary(shares: pd.DataFrame) -> pd.DataFrame:
    """Per (schedule, T) and quantity of :func:`ddpm.coding.coding_shares`: the mean over seeds
    with its 95 % Student-t interval (``n``, ``mean``, ``lo``, ``hi``)."""
    from .coding import SHARE_COLUMNS

    rows = [
        {"schedule": schedule, "T": int(T), "quantity": quantity, **t_interval(group[quantity])}
        for (schedule, T), group in shares.groupby(["schedule", "T"], sort=False)
        for quantity in SHARE_COLUMNS
    ]
    columns = ["schedule", "T", "quantity", "n", "mean", "lo", "hi"]
    return pd.DataFrame(rows, columns=[*columns, "sd", "half"])[columns]


_CODING_CLAIMS = (
    (
        "most of the rate goes to the last 10 % of the steps",
        "rate_share_last_steps",
        "share of the bound spent from x_{T/10} to x_0",
    ),
    (
        "most of the distortion is removed with the first 10 % of the rate",
        "distortion_removed_first_rate",
        "share of the distortion at t = T removed once 10 % of the bound has been sent",
    ),
)

CODING_RULE = (
    "per schedule and T, over seeds: holds if the 95 % t-interval of the share lies above one "
    "half, does not hold if it lies below, else cannot be told apart"
)


def coding_verdicts(shares: pd.DataFrame) -> pd.DataFrame:
    """Ho et al.'s claims about progressive coding (sec. 4.3, fig. 5), per schedule and T, each
    with its verdict (:data:`CODING_RULE`):

    - "most of the rate goes to the last steps", where the changes are imperceptible: the share
      of the bound spent in the last 10 % of the reverse steps (x_{T/10} to x_0);
    - "distortion falls steeply at little rate": the share of the distortion at t = T that is
      removed by the time 10 % of the bound has been sent.
    """
    rows = []
    for (schedule, T), group in shares.groupby(["schedule", "T"], sort=False):
        for claim, column, meaning in _CODING_CLAIMS:
            share = t_interval(group[column])
            verdict = sign_verdict(share["lo"] - CODING_MOST, share["hi"] - CODING_MOST, +1)
            rows.append(
                {
                    "schedule": schedule,
                    "T": int(T),
                    "claim": claim,
                    "verdict": verdict,
                    "numbers": f"{meaning}: {_percent(share)} (n = {share['n']} seeds)",
                }
            )
    return pd.DataFrame(rows, columns=["schedule", "T", "claim", "verdict", "numbers"])


def _percent(share: Mapping) -> str:
    return (
        f"{100 * share['mean']:.1f} % [{100 * share['lo']:.1f}, {100 * share['hi']:.1f}] (95 % CI)"
    )


# --- the prediction target (seed 004 sec. 3.2) ---------------------------------------------------
REFERENCE_PREDICTION = "eps"
"""The target the claim favours: the noise (Ho et al.)."""


def prediction_verdicts(runs: pd.DataFrame, fid: str = "classifier_fid") -> pd.DataFrame:
    """Seed 004's claim that predicting the noise gives better samples than predicting a direct
    alternative (x_0, v or the posterior mean), one row per alternative the runs hold.

    Runs are paired by beta schedule, T and seed (the same schedule, initial weights and data
    order, only the target differs); the verdict is :func:`sign_verdict` on the 95 % t-interval
    of the mean FID difference (alternative minus eps: above 0 means eps is better).
    """
    keys = [k for k in ("beta_schedule", "T", "seed") if k in runs]
    wide = runs.pivot_table(index=keys, columns="prediction", values=fid)
    rule = (
        "paired by schedule, T and seed; holds if the 95 % t-interval of the difference is "
        "above 0, does not hold if below 0, else cannot be told apart"
    )
    rows = []
    for other in sorted(set(runs["prediction"].dropna()) - {REFERENCE_PREDICTION}):
        if REFERENCE_PREDICTION not in wide or other not in wide:
            continue
        diff = t_interval((wide[other] - wide[REFERENCE_PREDICTION]).dropna())
        rows.append(
            {
                "claim": f"predicting eps gives better samples (lower FID) than predicting {other}",
                "verdict": sign_verdict(diff["lo"], diff["hi"], +1),
                "numbers": f"FID({other}) − FID(eps): {_fmt(diff['mean'], diff['lo'], diff['hi'])}"
                f" (n = {diff['n']} pairs)",
                "rule": rule,
            }
        )
    if len(rows) > 1:
        rows.append(
            {
                "claim": "predicting eps gives better samples than every alternative",
                "verdict": _combine([row["verdict"] for row in rows]),
                "numbers": "the rows above",
                "rule": "holds if every row holds, does not hold if any does not, else cannot "
                "be told apart",
            }
        )
    return pd.DataFrame(rows, columns=["claim", "verdict", "numbers", "rule"])
