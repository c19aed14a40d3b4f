"""Latency and error accounting: HDR histograms (1 us .. 1 h, 3 significant digits) per operation.

Workers keep `Tally`s and ship `TallySnapshot`s (plain, picklable, histogram HDR-encoded) to the
parent, which merges them. A `Recorder` splits completions into per-second buckets (the time
series) and the measured window (the summary).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

__all__ = ["LOWEST_US", "HIGHEST_US", "SIGNIFICANT_DIGITS", "new_histogram", "Tally",
           "TallySnapshot", "merge_snapshots", "Recorder"]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: longer than any timeout, so nothing is clipped
SIGNIFICANT_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


@dataclass(frozen=True)
class TallySnapshot:
    """Counts of one operation; `count` includes errors; histogram is HDR V2 base64 (or b"")."""

    count: int
    errors: dict[str, int]  # DynamoDB error type -> count
    transport_errors: dict[str, int]  # exception name -> count
    histogram: bytes


class Tally:
    """One operation's completions: latency of every attempt (ok or not) and errors by kind."""

    def __init__(self) -> None:
        self.histogram = new_histogram()
        self.count = 0
        self.errors: Counter[str] = Counter()
        self.transport_errors: Counter[str] = Counter()

    def record(self, latency_us: int, error: str | None, transport: bool) -> None:
        self.histogram.record_value(min(max(latency_us, LOWEST_US), HIGHEST_US))
        self.count += 1
        if error is not None:
            (self.transport_errors if transport else self.errors)[error] += 1

    def snapshot(self) -> TallySnapshot:
        encoded = self.histogram.encode() if self.count else b""
        return TallySnapshot(self.count, dict(self.errors), dict(self.transport_errors), encoded)


@dataclass
class MergedTally:
    count: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    histogram: HdrHistogram = field(default_factory=new_histogram)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + sum(self.transport_errors.values())


def merge_snapshots(snapshots: list[TallySnapshot]) -> MergedTally:
    merged = MergedTally()
    for snap in snapshots:
        merged.count += snap.count
        merged.errors.update(snap.errors)
        merged.transport_errors.update(snap.transport_errors)
        if snap.histogram:
            merged.histogram.decode_and_add(snap.histogram)
    return merged


class Recorder:
    """Where each completion goes, by its completion time `t` (seconds since the phase start):

    - bucket int(t) of the time series, if t < end_s;
    - the summary, if warmup_s <= t < end_s;
    - `outside_window` otherwise (warm-up and the drain after the end), so every request counts.
    end_s None means no end (the load phase).
    """

    def __init__(self, operations: tuple[str, ...], warmup_s: float, end_s: float | None,
                 top_level: tuple[str, ...] | None = None) -> None:
        self._operations = operations
        # Only operations of the mix count towards outside_window (not the halves of an rmw).
        self._top_level = frozenset(operations if top_level is None else top_level)
        self._warmup_s = warmup_s
        self._end_s = float("inf") if end_s is None else end_s
        self.totals = {op: Tally() for op in operations}
        self._buckets: dict[int, dict[str, Tally]] = {}
        self.outside_window = 0
        self.requests: Counter[str] = Counter()  # every request sent, by DynamoDB operation

    def record(self, op: str, t_s: float, latency_us: int, error: str | None,
               transport: bool) -> None:
        if t_s >= self._end_s:
            self.outside_window += op in self._top_level
            return
        second = int(t_s)
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = {name: Tally() for name in self._operations}
        bucket[op].record(latency_us, error, transport)
        if t_s >= self._warmup_s:
            self.totals[op].record(latency_us, error, transport)
        else:
            self.outside_window += op in self._top_level

    def take_seconds(self, before: int | None = None) -> list[tuple[int, dict[str, TallySnapshot]]]:
        """Remove and return the finished buckets (seconds < before; all if None), oldest first."""
        ready = sorted(s for s in self._buckets if before is None or s < before)
        return [(s, {op: t.snapshot() for op, t in self._buckets.pop(s).items()}) for s in ready]

    def total_snapshots(self) -> dict[str, TallySnapshot]:
        return {op: tally.snapshot() for op, tally in self.totals.items()}
