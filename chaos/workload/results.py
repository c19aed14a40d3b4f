"""The results of a run: frozen, JSON-ready, built by merging the workers' snapshots."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from chaos.workload.settings import BenchSettings
from chaos.workload.stats import MergedTally, TallySnapshot, merge_snapshots

__all__ = ["LatencySummary", "OpResult", "SecondSample", "CpuUsage", "PhaseResult", "BenchResult",
           "op_result", "second_sample"]


@dataclass(frozen=True)
class LatencySummary:
    p50_us: int
    p95_us: int
    p99_us: int
    p999_us: int
    max_us: int
    mean_us: float

    @staticmethod
    def of(histogram: HdrHistogram) -> LatencySummary:
        if histogram.get_total_count() == 0:
            return LatencySummary(0, 0, 0, 0, 0, 0.0)
        at = histogram.get_value_at_percentile
        return LatencySummary(at(50.0), at(95.0), at(99.0), at(99.9),
                              histogram.get_max_value(), round(histogram.get_mean_value(), 1))


@dataclass(frozen=True)
class OpResult:
    """One operation over the measured window. `count` includes errors; latency covers every
    completed attempt, successful or not (a timeout is what the client lived through)."""

    name: str
    count: int
    ok: int
    error_count: int
    ops_per_s: float
    latency: LatencySummary
    errors: dict[str, int]  # DynamoDB error type (`__type` after '#') -> count
    transport_errors: dict[str, int]  # no HTTP response: exception name -> count
    histogram: str  # the HDR histogram, V2 base64, for merging with other runs


@dataclass(frozen=True)
class SecondSample:
    """Second `second` of a phase (completions in [second, second + 1) after the start)."""

    second: int
    warmup: bool
    ops_per_s: int
    ops: dict[str, int]
    errors: int
    p50_us: int
    p99_us: int
    max_us: int


@dataclass(frozen=True)
class CpuUsage:
    """The load generator's own CPU while generating load; 100 = one core busy."""

    workers_percent_of_core: float  # all workers together
    per_worker_percent: tuple[float, ...]
    parent_percent_of_core: float  # merging and printing progress
    workers_cpu_s: float
    wall_s: float


@dataclass(frozen=True)
class PhaseResult:
    phase: str  # "load" or "run"
    measured_s: float
    ops: tuple[OpResult, ...]
    total: OpResult  # all operations merged
    series: tuple[SecondSample, ...]
    cpu: CpuUsage
    requests: dict[str, int]  # every request sent, warm-up and drain included, by operation
    outside_window: int  # completions in `series`/`requests` but not in the summary


@dataclass(frozen=True)
class BenchResult:
    settings: BenchSettings  # with the seed that was used
    load: PhaseResult | None
    run: PhaseResult | None
    table_created: bool = False  # the bench created the table (it was missing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _op_from_merged(name: str, merged: MergedTally, measured_s: float) -> OpResult:
    encoded = merged.histogram.encode() if merged.count else b""
    return OpResult(
        name=name, count=merged.count, ok=merged.count - merged.error_count,
        error_count=merged.error_count,
        ops_per_s=round(merged.count / measured_s, 1) if measured_s > 0 else 0.0,
        latency=LatencySummary.of(merged.histogram), errors=dict(sorted(merged.errors.items())),
        transport_errors=dict(sorted(merged.transport_errors.items())),
        histogram=encoded.decode() if isinstance(encoded, bytes) else str(encoded))


def op_result(name: str, snapshots: list[TallySnapshot], measured_s: float) -> OpResult:
    return _op_from_merged(name, merge_snapshots(snapshots), measured_s)


def second_sample(second: int, warmup: bool, per_op: dict[str, list[TallySnapshot]],
                  top_level: tuple[str, ...]) -> SecondSample:
    """One second of the time series; ops/s, errors and latency over the `top_level` ops."""
    everything = MergedTally()
    counts: Counter[str] = Counter()
    for op, snaps in per_op.items():
        merged = merge_snapshots(snaps)
        counts[op] = merged.count
        if op not in top_level:
            continue
        everything.count += merged.count
        everything.errors.update(merged.errors)
        everything.transport_errors.update(merged.transport_errors)
        if merged.count:
            everything.histogram.add(merged.histogram)
    latency = LatencySummary.of(everything.histogram)
    return SecondSample(second, warmup, everything.count, dict(counts), everything.error_count,
                        latency.p50_us, latency.p99_us, latency.max_us)
