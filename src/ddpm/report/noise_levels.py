"""The report's sections on noise levels: the closeness experiment in log-SNR terms (collapse,
predicted against measured band entry, the shift check), the terminal SNR of every grid cell,
and a dataset studied at another size next to itself (the shift study)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .answers import interval
from .page import table_html

READINGS = ("copies", "pixels")


def _verdict(flag) -> str:
    from ..verdicts import DOES_NOT_HOLD, HOLDS

    return HOLDS if flag else DOES_NOT_HOLD


# --- the closeness experiment in log-SNR terms ------------------------------------------------
def log_snr_section(closest: pd.DataFrame, shifted: pd.DataFrame | None) -> str:
    """Collapse verdicts, predicted against measured band entry, slopes, and the shift check.

    The pixels reading never sees the image, so its rows are the same for every image: they are
    shown (and counted) for the first image only.
    """
    if f"predicted_t_enter_{READINGS[0]}" not in closest:
        return "<p>The closest points carry no prediction; run the closeness analysis again.</p>"
    first = closest["photo"].iloc[0]
    closest = closest.copy()
    for column in [c for c in closest if c.endswith("_pixels")]:
        closest[column] = closest[column].astype(object).where(closest["photo"] == first)
    return (
        _collapse_html(closest)
        + _prediction_html(closest)
        + _slopes_html(closest)
        + (_shift_check_html(shifted) if shifted is not None and not shifted.empty else "")
    )


def _collapse_html(closest: pd.DataFrame) -> str:
    from ..analysis.band_entry import collapse_verdicts

    verdicts = collapse_verdicts(closest)
    held = int(verdicts["collapses"].sum())
    table = pd.DataFrame(
        {
            "image": verdicts["photo"],
            "size": verdicts["image_size"],
            "reading": verdicts["reading"],
            "entry log-SNR (min … max over schedules)": [
                f"{r.log_snr_enter_min:.2f} … {r.log_snr_enter_max:.2f}"
                for r in verdicts.itertuples()
            ],
            "spread": verdicts["spread_log_snr"],
            "tolerance": verdicts["tolerance_log_snr"],
            "spread of t/T": verdicts["spread_t_over_T"],
            "verdict": verdicts["collapses"].map(_verdict),
        }
    )
    return (
        "<h3>Do the schedules collapse onto one log-SNR?</h3><p>Each reading depends on the "
        "schedule only through alpha_bar_t, so against the log-SNR every schedule's curve should "
        "be one curve per image and size. <b>Rule:</b> the claim holds at an image and size when "
        "the spread of the band-entry log-SNR over the schedules is at most the tolerance: the "
        "widest predicted 95 % interval of a band entry (in log-SNR) plus the largest log-SNR "
        "step at an entry, i.e. what the noise band and the step grid let two schedules with the "
        f"same curve differ by. It holds in {held} of {len(verdicts)} cases. The spread of the "
        "entry step t/T over the schedules is shown for contrast: in t the schedules differ by "
        f"{verdicts['spread_t_over_T'].min():.2f}–{verdicts['spread_t_over_T'].max():.2f} of "
        "the run.</p>" + table_html(table, "{:.3f}")
    )


def _prediction_html(closest: pd.DataFrame) -> str:
    rows, misses = [], []
    for reading in READINGS:
        for r in closest.to_dict("records"):
            if pd.isna(r[f"t_enter_{reading}"]) or pd.isna(r[f"predicted_pass_{reading}"]):
                continue
            passed = bool(r[f"predicted_pass_{reading}"])
            rows.append(
                {
                    "image": r["photo"],
                    "schedule": r["schedule"],
                    "size": r["image_size"],
                    "reading": reading,
                    "measured t": f"{r[f't_enter_{reading}']:.0f}",
                    "predicted t [95 %]": _steps(r, reading),
                    "measured log-SNR": r[f"log_snr_enter_{reading}"],
                    "predicted log-SNR": r[f"predicted_log_snr_enter_{reading}"],
                    "level (schedule-free)": r[f"predicted_log_snr_level_{reading}"],
                    "result": "pass" if passed else "fail",
                }
            )
            if not passed:
                misses.append(_miss(r, reading))
    table = pd.DataFrame(rows)
    passed = int((table["result"] == "pass").sum()) if len(table) else 0
    return (
        "<h3>Band entry predicted from the image, D, n and the noise band</h3><p>The expected "
        "reading at each alpha_bar follows from the image's pixel variance, D and n; the "
        "measured curve is that plus fresh noise at every step, so the entry into the band is a "
        "first passage, whose median is the predicted step and whose 2.5 and 97.5 % points "
        "bound it (derivation: <code>docs/closeness.md</code>). Nothing is fitted to the curves. "
        "<b>Rule:</b> a prediction passes when the measured entry lies in its 95 % interval "
        f"widened by one step each side (the step resolution). <b>{passed} of {len(table)} "
        "pass.</b>"
        + (f" Where it fails: {'; '.join(misses)}." if misses else "")
        + "</p>"
        + table_html(table, "{:.2f}")
    )


def _steps(row: Mapping, reading: str) -> str:
    return (
        f"{row[f'predicted_t_enter_{reading}']:.0f} [{row[f'predicted_t_enter_low_{reading}']:.0f}"
        f", {row[f'predicted_t_enter_high_{reading}']:.0f}]"
    )


def _miss(row: Mapping, reading: str) -> str:
    measured = row[f"log_snr_enter_{reading}"]
    low = row[f"predicted_log_snr_enter_low_{reading}"]
    high = row[f"predicted_log_snr_enter_high_{reading}"]
    outside = min(abs(measured - low), abs(measured - high))
    return (
        f"{row['photo']} {row['schedule']} {row['image_size']}x{row['image_size']} {reading}: "
        f"{row[f'predicted_miss_steps_{reading}']:.0f} steps ({outside:.2f} in log-SNR) outside"
    )


def _slopes_html(closest: pd.DataFrame) -> str:
    from ..stats import ols_slope

    rows = []
    for photo, part in closest.groupby("photo", sort=False):
        for reading in READINGS:
            if part[f"log_snr_enter_{reading}"].isna().all():
                continue
            measured = ols_slope(np.log2(part["image_size"]), part[f"log_snr_enter_{reading}"])
            rows.append(
                {
                    "image": photo,
                    "reading": reading,
                    "measured entry log-SNR per doubling [95 %]": interval(
                        measured["slope"], measured["lo"], measured["hi"]
                    ),
                    "predicted level per doubling": part[
                        f"predicted_slope_per_doubling_{reading}"
                    ].iloc[0],
                }
            )
    return (
        "<h3>How the level falls with the image's side</h3><p>Per doubling of the side, the "
        "measured band-entry log-SNR (OLS over every schedule and size) next to the slope of "
        "the predicted level. Noise alone would give −ln 2 = −0.69 (the off-diagonal noise "
        "shrinks as 1/sqrt(D)); simple diffusion's shift is −2 ln 2 = −1.39.</p>"
        + table_html(pd.DataFrame(rows), "{:.2f}")
    )


def _shift_check_html(shifted: pd.DataFrame) -> str:
    from ..analysis.closeness_study import shift_spread

    spread = shift_spread(shifted)
    return (
        "<h3>Shifting each size by the predicted level</h3><p>Each schedule, its log-SNR "
        "shifted at each size by the predicted level there minus the level at the smallest size "
        "(<code>predicted</code>) or by simple diffusion's 2 ln(d<sub>0</sub>/d) "
        "(<code>simple_diffusion</code>), run through the copies reading with the same noise: "
        "the band entry as a fraction of T at each size, and its spread over the sizes.</p>"
        + table_html(spread, "{:.3f}")
    )


# --- terminal SNR ------------------------------------------------------------------------------
def terminal_snr_html(schedule_table: pd.DataFrame, schedules: Sequence[str], steps) -> str:
    """SNR(T), alpha_bar_T and the prior KL of every grid cell, the cells far from noise flagged."""
    from ..verdicts import TERMINAL_KL_FLAG_BITS, terminal_snr

    if "snr" not in schedule_table:  # a table written before it had the column
        return ""
    terminal = terminal_snr(schedule_table)
    terminal = terminal[terminal["schedule"].isin(schedules) & terminal["T"].isin(steps)]
    if terminal.empty:
        return ""
    flagged = terminal[terminal["far_from_noise"]]
    table = terminal.assign(far_from_noise=terminal["far_from_noise"].map({True: "yes", False: ""}))
    return (
        "<h3>How much signal is left at T</h3><p>SNR(T) = alpha_bar_T / (1 − alpha_bar_T) and "
        "KL(q(x_T | x_0) ‖ N(0, I)) per dimension for an x_0 of mean square 1 (the largest an "
        "image in [−1, 1] can have). A cell is flagged when that KL exceeds "
        f"{TERMINAL_KL_FLAG_BITS:g} bits per dimension: sampling starts from N(0, I), which such "
        f"a cell's x_T is not. {len(flagged)} of {len(terminal)} cells are flagged"
        + (f": {', '.join(sorted(set(flagged['schedule'])))}." if len(flagged) else ".")
        + "</p>"
        + table_html(table, "{:.3g}")
    )


def terminal_readings_html(runs: pd.DataFrame, schedule_table: pd.DataFrame) -> str:
    """Where the terminal SNR could explain part of an FID difference (for the verdicts)."""
    from ..verdicts import terminal_snr, terminal_snr_readings

    if "snr" not in schedule_table:
        return ""
    readings = terminal_snr_readings(runs, terminal_snr(schedule_table))
    if readings.empty:
        return (
            "<p><b>Terminal SNR:</b> no T of the grid has schedules both far from and close to "
            "noise at T, so it explains none of the FID differences between them.</p>"
        )
    may = readings[readings["reading"].str.contains("may explain")]
    return (
        "<h4>Terminal SNR and the verdicts</h4><p>Schedules whose x_T is far from N(0, I) (see "
        "The grid) against those whose x_T is not, at the same T, paired by seed. Where the one "
        "far from noise has the higher FID the leftover signal may explain part of the "
        "difference; in this grid it goes with the schedule, so the study cannot say how much. "
        f"That is the case in {len(may)} of {len(readings)} comparisons"
        + (f" (T = {', '.join(map(str, sorted(set(may['T']))))})" if len(may) else "")
        + ".</p>"
        + table_html(readings)
    )


# --- a dataset at another size ----------------------------------------------------------------
def variant_section(datasets, configuration: Mapping, reference_schedule: str) -> str:
    """The shift study's answer: does each variant (the same images enlarged) reach its base
    dataset's quality, scored at one size? Empty when the study has no variant."""
    from ..verdicts import RELATIVE_MARGIN, variant_comparison

    options = configuration.get("dataset_options") or {}
    variants = {
        d.name: options[d.name]["variant_of"]
        for d in datasets
        if (options.get(d.name) or {}).get("variant_of")
    }
    if not variants:
        return ""
    runs = {d.name: d.runs for d in datasets}
    score_size = (configuration.get("scoring") or {}).get("image_size")
    out = (
        "<p>Every sample is scored "
        + (f"at {score_size} x {score_size} (k x k blocks averaged) " if score_size else "")
        + "by the domain classifier. Reference: "
        + ", ".join(
            f"{html.escape(base)} with {html.escape(reference_schedule)}"
            for base in sorted(set(variants.values()))
        )
        + ". <b>Rule:</b> a cell recovers the reference's quality when the 95 % Welch interval of "
        f"its difference to the reference lies within ± {RELATIVE_MARGIN:.0%} of the reference's "
        "mean; it is "
        "worse when that interval lies above 0 (FID) or below 0 (IS). The base dataset's other "
        "schedules are the control.</p>"
    )
    for metric in ("classifier_fid", "classifier_is_mean"):
        comparison = variant_comparison(
            runs, variants, reference_schedule, metric, lower_is_better=metric.endswith("fid")
        )
        if comparison.empty:
            continue
        out += f"<h4>{'FID' if metric.endswith('fid') else 'IS'}</h4>" + table_html(
            _variant_table(comparison)
        )
    return out


def _variant_table(comparison: pd.DataFrame) -> pd.DataFrame:
    from ..verdicts import RELATIVE_MARGIN

    return pd.DataFrame(
        {
            "dataset": comparison["dataset"],
            "schedule": comparison["schedule"],
            "T": comparison["T"],
            "mean [95 % CI]": [interval(r.mean, r.lo, r.hi) for r in comparison.itertuples()],
            "reference": comparison["reference_mean"].map("{:.3g}".format),
            "difference [95 % Welch]": [
                interval(r.difference, r.difference_lo, r.difference_hi)
                for r in comparison.itertuples()
            ],
            f"recovers (± {RELATIVE_MARGIN:.0%})": comparison["recovers"],
            "worse": comparison["worse"],
        }
    )
