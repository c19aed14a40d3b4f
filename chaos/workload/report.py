"""Presenting a BenchResult: the progress line, the final table, the JSON file and the PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from chaos.workload.results import BenchResult, OpResult, PhaseResult, SecondSample

__all__ = ["format_progress", "format_table", "result_document", "write_json", "write_png"]

JSON_FORMAT = "dynalab-bench/1"
# A worker busier than this (% of one core) was probably the limit, not the endpoint.
_BUSY_WORKER_PERCENT = 85.0


def _ms(latency_us: float) -> str:
    return f"{latency_us / 1000:.2f}"


def format_progress(phase: str, sample: SecondSample) -> str:
    tag = " warm-up" if sample.warmup else ""
    return (f"[{phase} {sample.second + 1:>4d}s] {sample.ops_per_s:>9,d} ops/s  "
            f"p99 {_ms(sample.p99_us):>8s} ms  errors {sample.errors:,d}{tag}")


_HEADER = (f"{'operation':<11s}{'count':>11s}{'ops/s':>11s}{'p50 ms':>9s}{'p95 ms':>9s}"
           f"{'p99 ms':>9s}{'p99.9 ms':>10s}{'max ms':>9s}{'errors':>9s}")


def _row(op: OpResult) -> str:
    lat = op.latency
    return (f"{op.name:<11s}{op.count:>11,d}{op.ops_per_s:>11,.1f}{_ms(lat.p50_us):>9s}"
            f"{_ms(lat.p95_us):>9s}{_ms(lat.p99_us):>9s}{_ms(lat.p999_us):>10s}"
            f"{_ms(lat.max_us):>9s}{op.error_count:>9,d}")


def _error_lines(phase: PhaseResult) -> list[str]:
    lines = []
    for op in phase.ops:
        kinds = [f"{k} {n:,d}" for k, n in op.errors.items()]
        kinds += [f"transport {k} {n:,d}" for k, n in op.transport_errors.items()]
        if kinds:
            lines.append(f"  {op.name}: " + ", ".join(kinds))
    return (["errors:"] + lines) if lines else []


def _cpu_line(phase: PhaseResult) -> str:
    cpu = phase.cpu
    workers = ", ".join(f"{p:.0f}%" for p in cpu.per_worker_percent)
    line = (f"load generator CPU: {cpu.workers_percent_of_core:.0f}% of a core "
            f"(workers {workers}; parent {cpu.parent_percent_of_core:.0f}%)")
    if any(p >= _BUSY_WORKER_PERCENT for p in cpu.per_worker_percent):
        line += ("\n  a worker was near a full core: add --workers to be sure the bench is not "
                 "the limit")
    return line


def _phase_block(phase: PhaseResult, warmup_s: float) -> list[str]:
    if phase.phase == "run":
        title = f"run: {phase.measured_s:g} s measured" + (
            f" after {warmup_s:g} s warm-up" if warmup_s else "")
    else:
        title = f"load: {phase.total.count:,d} inserts in {phase.measured_s:.1f} s"
    rows = [_row(op) for op in phase.ops]
    if len(phase.ops) > 1:
        rows.append(_row(phase.total))
    return ["", title, _HEADER, *rows, *_error_lines(phase), _cpu_line(phase)]


def format_table(result: BenchResult) -> str:
    s = result.settings
    rate = "open throttle" if s.rate_ops_s is None else f"target {s.rate_ops_s:g} ops/s"
    lines = [
        f"dynalab bench: workload {s.spec.name} ({s.spec.description}), {s.key_distribution} keys, "
        f"{s.records:,d} records of ~{s.item_size_bytes} B",
        f"endpoint {s.endpoint}, table {s.table}, {s.workers} worker(s) x {s.connections} "
        f"connections, {rate}, {'strongly' if s.consistent_read else 'eventually'} consistent "
        f"reads, seed {s.seed}",
    ]
    for phase in (result.load, result.run):
        if phase is not None:
            lines += _phase_block(phase, s.warmup_s)
    return "\n".join(lines)


def result_document(result: BenchResult) -> dict[str, Any]:
    return {"format": JSON_FORMAT, **result.to_dict()}


def write_json(result: BenchResult, path: str | Path) -> None:
    Path(path).write_bytes(orjson.dumps(result_document(result), option=orjson.OPT_INDENT_2))


def write_png(result: BenchResult, path: str | Path) -> None:
    """Throughput and p99 per second of the run phase (the load phase if there was no run)."""
    import matplotlib
    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    phase = result.run or result.load
    if phase is None:
        raise ValueError("the result has no phase to plot")
    seconds = [sample.second + 0.5 for sample in phase.series]  # the middle of each second
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    top.plot(seconds, [x.ops_per_s for x in phase.series], label="total", linewidth=2)
    mix = result.settings.spec.operations if phase.phase == "run" else ("insert",)
    if len(mix) > 1:  # the halves of a read-modify-write would only crowd the plot
        for op in mix:
            top.plot(seconds, [x.ops.get(op, 0) for x in phase.series], label=op)
    if any(x.errors for x in phase.series):
        top.plot(seconds, [x.errors for x in phase.series], color="tab:red", linestyle="--",
                 label="errors")
    top.set_ylabel("ops/s")
    top.legend(loc="lower right", fontsize="small")
    bottom.plot(seconds, [x.p99_us / 1000 for x in phase.series], color="tab:red", label="p99")
    bottom.plot(seconds, [x.p50_us / 1000 for x in phase.series], color="tab:gray", label="p50")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the start of the phase")
    bottom.legend(loc="upper right", fontsize="small")
    warmup_s = result.settings.warmup_s if phase.phase == "run" else 0.0
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
        axis.set_ylim(bottom=0)
        if warmup_s:
            axis.axvspan(0, warmup_s, color="0.9", zorder=0, label="_warm-up")
    s = result.settings
    fig.suptitle(f"dynalab bench {phase.phase}: workload {s.spec.name}, "
                 f"{s.workers}x{s.connections} connections, {s.endpoint}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
