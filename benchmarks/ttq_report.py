"""The tables of the time-to-quality benchmark: one row per system, one row per measured moment,
the ratios against the faster peer, and whether our two targets are met."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from peers import TrainingRun

#: Ours must reach the faster peer's final FID in at most this fraction of the peer's time.
TIME_TARGET = 2 / 3

SUMMARY_COLUMNS = (
    "system",
    "params",
    "steps",
    "train_s",
    "cpu_share",
    "train_img_per_s",
    "train_img_per_cpu_s",
    "sample_ms_per_img_step",
    "sample_cpu_ms",
    "fid",
    "is",
    "s_to_target_fid",
    "img_per_s_ratio",
    "sample_ms_ratio",
    "fid_ratio",
    "time_ratio",
)
MOMENT_COLUMNS = (
    "system",
    "moment",
    "train_s",
    "steps",
    "fid",
    "is",
    "sample_ms_per_img_step",
    "sample_cpu_ms",
)


@dataclass(frozen=True)
class Evaluation:
    """Quality of one snapshot, and how long its sampling took per image per step."""

    seconds: float
    steps: int
    fid: float
    inception_score: float
    sample_ms: float
    #: The same in CPU time of this process: what the sampling cost, whoever else used the core.
    sample_cpu_ms: float


@dataclass
class SystemResult:
    run: TrainingRun
    evaluations: list[Evaluation]

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def final(self) -> Evaluation:
        return self.evaluations[-1]

    @property
    def sample_ms(self) -> float:
        # The median over the moments: one sampling run is exposed to a neighbour's burst.
        return statistics.median(e.sample_ms for e in self.evaluations)

    @property
    def sample_cpu_ms(self) -> float:
        return statistics.median(e.sample_cpu_ms for e in self.evaluations)

    def seconds_to(self, fid: float) -> float | None:
        """Training seconds at the first moment whose FID is at most ``fid`` (None: never)."""
        return next((e.seconds for e in self.evaluations if e.fid <= fid), None)

    def interpolated_seconds_to(self, fid: float) -> float | None:
        """An estimate between the moments: where the FID, linear in time between the moment
        before and the first moment at most ``fid``, crosses ``fid`` (that first moment's time
        when it is the first moment; None: never reached)."""
        previous = None
        for evaluation in self.evaluations:
            if evaluation.fid <= fid:
                if previous is None:
                    return evaluation.seconds
                fraction = (previous.fid - fid) / (previous.fid - evaluation.fid)
                return previous.seconds + fraction * (evaluation.seconds - previous.seconds)
            previous = evaluation
        return None


def faster_peer(results: list[SystemResult]) -> SystemResult:
    peers = [r for r in results if r.name != "ours"]
    return max(peers, key=lambda r: r.run.images_per_second)


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None:
        return "n/a"
    return f"{value / reference:.2f}"


def _print_table(columns, rows) -> None:
    widths = [max(len(str(c)), *(len(str(row[i])) for row in rows)) for i, c in enumerate(columns)]
    print("  ".join(str(c).rjust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths, strict=True)))


def summary_rows(results: list[SystemResult]) -> list[tuple]:
    peer = faster_peer(results)
    target = peer.final.fid
    peer_time = peer.seconds_to(target)
    rows = []
    for result in results:
        time_to_target = result.seconds_to(target)
        rows.append(
            (
                result.name,
                f"{result.run.parameters:,}",
                result.run.steps,
                f"{result.run.seconds:.1f}",
                f"{result.run.cpu_share:.2f}",
                f"{result.run.images_per_second:.1f}",
                f"{result.run.images_per_second / result.run.cpu_share:.1f}",
                f"{result.sample_ms:.3f}",
                f"{result.sample_cpu_ms:.3f}",
                f"{result.final.fid:.2f}",
                f"{result.final.inception_score:.2f}",
                "n/a" if time_to_target is None else f"{time_to_target:.1f}",
                _ratio(result.run.images_per_second, peer.run.images_per_second),
                _ratio(result.sample_ms, peer.sample_ms),
                _ratio(result.final.fid, peer.final.fid),
                _ratio(time_to_target, peer_time),
            )
        )
    return rows


def moment_rows(results: list[SystemResult]) -> list[tuple]:
    return [
        (
            result.name,
            index,
            f"{e.seconds:.1f}",
            e.steps,
            f"{e.fid:.2f}",
            f"{e.inception_score:.2f}",
            f"{e.sample_ms:.3f}",
            f"{e.sample_cpu_ms:.3f}",
        )
        for result in results
        for index, e in enumerate(result.evaluations, start=1)
    ]


def _interpolated(ours: SystemResult, peer: SystemResult, target: float) -> str:
    ours_time = ours.interpolated_seconds_to(target)
    peer_time = peer.interpolated_seconds_to(target)
    return f"{ours_time:.1f} s against {peer_time:.1f} s, {ours_time / peer_time:.2f} x"


def verdicts(results: list[SystemResult]) -> list[str]:
    ours = next(r for r in results if r.name == "ours")
    peer = faster_peer(results)
    target = peer.final.fid
    peer_time, ours_time = peer.seconds_to(target), ours.seconds_to(target)
    if ours_time is None:
        quality = (
            f"not met: ours never reached FID <= {target:.2f} within its {ours.run.seconds:.1f} s"
        )
    else:
        ratio = ours_time / peer_time
        met = "met" if ratio <= TIME_TARGET else "not met"
        quality = (
            f"{met}: ours reached FID <= {target:.2f} after {ours_time:.1f} s, {ratio:.2f} x "
            f"{peer.name}'s {peer_time:.1f} s (target <= {TIME_TARGET:.2f}; moments are "
            f"1/{len(ours.evaluations)} of the budget apart; interpolated between them "
            f"{_interpolated(ours, peer, target)})"
        )
    speed = ours.sample_ms / peer.sample_ms
    sampling = (
        f"{'met' if speed <= 1.0 else 'not met'}: ours samples at {ours.sample_ms:.3f} ms per "
        f"image per step, {speed:.2f} x {peer.name}'s {peer.sample_ms:.3f} (target <= 1.00); "
        f"in CPU time {ours.sample_cpu_ms:.3f} against {peer.sample_cpu_ms:.3f} ms, "
        f"{ours.sample_cpu_ms / peer.sample_cpu_ms:.2f} x"
    )
    return [f"same FID in <= 2/3 of the faster peer's time: {quality}", f"sampling: {sampling}"]


def print_report(
    results: list[SystemResult], real_fid: float, real_is: float, accuracy: float
) -> None:
    peer = faster_peer(results)
    print()
    print(
        f"faster peer (higher training img/s): {peer.name}; target FID = its final FID "
        f"{peer.final.fid:.2f}; ratios are system / {peer.name}"
    )
    print(
        f"scorer: domain classifier, test accuracy {100 * accuracy:.1f} %; real training images "
        f"against the test set: FID {real_fid:.2f}, IS {real_is:.2f}"
    )
    print(
        "cpu_share: CPU seconds per wall-clock second while training (below 1: the machine's "
        "other users had the core for part of the budget); train_img_per_cpu_s and "
        "sample_cpu_ms: the same throughputs per CPU second of this process"
    )
    print()
    _print_table(SUMMARY_COLUMNS, summary_rows(results))
    print()
    _print_table(MOMENT_COLUMNS, moment_rows(results))
    print()
    for result in results:
        print(
            f"{result.name}: mean training loss {result.run.first_loss:.4f} over its first steps, "
            f"{result.run.last_loss:.4f} over its last"
        )
    for line in verdicts(results):
        print(line)
