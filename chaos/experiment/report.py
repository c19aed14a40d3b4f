"""An experiment's report: report.json, summary.txt, plot.png (and history.jsonl, written by the
runner). The plot shows throughput, errors and p99 latency over time with every fault as a
shaded span and the heal as a line."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from chaos.experiment.history import OK, HistoryEntry, is_load
from chaos.experiment.schedule import FaultEvent
from chaos.experiment.spec import Experiment
from chaos.experiment.verdict import Verdict

__all__ = ["FORMAT", "Report", "Series", "series_of", "write_report"]

FORMAT = "dynalab-experiment/1"


@dataclass(frozen=True)
class Series:
    bucket_s: float
    start_s: list[float]
    ok_per_s: list[float]
    errors_per_s: list[float]
    p99_ms: list[float | None]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def series_of(history: Sequence[HistoryEntry], end_s: float, bucket_s: float = 1.0) -> Series:
    """Per bucket of completion time: successful ops/s, errors/s, p99 latency of successes.
    A last partial bucket is left out: its rates would read low."""
    count = max(1, int(end_s / bucket_s))
    ok: list[list[float]] = [[] for _ in range(count)]
    errors = [0] * count
    for entry in history:
        if not is_load(entry):
            continue
        index = max(0, int(entry.complete_s / bucket_s))
        if index >= count:
            continue
        if entry.outcome == OK:
            ok[index].append(entry.latency_s * 1000)
        elif entry.is_error:
            errors[index] += 1
    return Series(bucket_s, [round(i * bucket_s, 3) for i in range(count)],
                  [len(b) / bucket_s for b in ok], [e / bucket_s for e in errors],
                  [_p99(b) for b in ok])


@dataclass(frozen=True)
class Report:
    experiment: Experiment
    status: str  # "completed" or "skipped"
    reason: str | None  # why skipped
    started_at: str
    events: tuple[FaultEvent, ...]
    heal_s: float
    end_s: float
    series: Series | None
    verdict: Verdict | None

    @property
    def ok(self) -> bool:
        return self.status == "skipped" or (self.verdict is not None and self.verdict.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "status": self.status, "skipped_reason": self.reason,
            "started_at": self.started_at,
            "experiment": _experiment_json(self.experiment),
            "timeline": {"heal_s": self.heal_s, "load_end_s": self.end_s,
                         "faults": [e.to_json() for e in self.events]},
            "series": self.series.to_json() if self.series else None,
            "verdict": self.verdict.to_json() if self.verdict else None,
        }


def _experiment_json(experiment: Experiment) -> dict[str, Any]:
    doc = dataclasses.asdict(experiment)
    doc["workload"]["mix"] = dict(experiment.workload.mix)
    plain: dict[str, Any] = json.loads(json.dumps(doc, default=str))  # mappings, tuples: JSON
    return plain


def summary(report: Report) -> str:
    e = report.experiment
    head = [f"experiment {e.name}{' (short)' if e.short else ''}: {e.description}".rstrip(": "),
            f"started {report.started_at}; load {report.end_s:.1f} s, healed at "
            f"{report.heal_s:.1f} s"]
    if report.status == "skipped":
        return "\n".join(head + [f"SKIPPED: {report.reason}"])
    assert report.verdict is not None
    v = report.verdict.to_json()
    steady = v["steady_state"]
    rate = steady["before_error_rate"]
    lines = head + ["faults:"]
    lines += [f"  {_span(ev)}  {ev.description}" + (f"  ERROR {ev.error}" if ev.error else "")
              for ev in report.events] or ["  (none)"]
    c = v["counts"]
    lines += [
        f"operations: {c['operations']} ({c['ok']} ok, {c['fail']} failed, {c['unknown']} "
        f"unknown; {c['errors']} errors)",
        f"acknowledged writes lost: {v['acknowledged_writes_lost']}",
        f"stale strongly consistent reads: {v['stale_strong_reads']}",
        f"linearizable: {_yes_no(v['linearizable'])}",
        f"unavailable: {v['unavailable_s']:.1f} s in {len(v['unavailability_windows_s'])} "
        f"window(s) {v['unavailability_windows_s'][:5]}",
        "steady state before faults: " + ("no operations" if rate is None else
                                          f"error rate {rate:.3%}") +
        (" ok" if steady["before_ok"] else " NOT MET"),
        "recovered: " + (f"{steady['recovery_s']:.1f} s after the heal"
                         if steady["recovery_s"] is not None else "NO (within the timeout)"),
        f"convergence: {v['convergence']['status']}" + (
            f" ({v['convergence'].get('reason')})" if v['convergence'].get("reason") else ""),
    ]
    for title, items in (("lost writes (first 5):", v["lost_writes"][:5]),
                         ("stale reads (first 5):", v["stale_reads"][:5]),
                         ("linearizability violations (first 3):",
                          v["linearizability"].get("violations", [])[:3])):
        if items:
            lines += [title, *(f"  {item}" for item in items)]
    lines.append(f"VERDICT: {'PASS' if report.ok else 'FAIL'}")
    return "\n".join(lines)


def _yes_no(value: bool | None) -> str:
    return "not checked" if value is None else "yes" if value else "NO"


def _span(event: FaultEvent) -> str:
    if event.applied_s is None:
        return "  (not applied)  "
    end = f"{event.undone_s:6.1f}" if event.undone_s is not None else "   end"
    return f"{event.applied_s:6.1f} - {end} s"


def write_report(report: Report, out_dir: Path) -> dict[str, Path]:
    """report.json, summary.txt and (for a completed run) plot.png in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "summary": out_dir / "summary.txt"}
    paths["json"].write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    paths["summary"].write_text(summary(report) + "\n", encoding="utf-8")
    if report.series is not None:
        paths["plot"] = out_dir / "plot.png"
        write_plot(report, paths["plot"])
    return paths


def write_plot(report: Report, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    series = report.series
    assert series is not None
    x = [t + series.bucket_s / 2 for t in series.start_s]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(11, 7))
    top.plot(x, series.ok_per_s, color="tab:blue", label="ok ops/s")
    top.set_ylabel("ok ops/s")
    middle.plot(x, series.errors_per_s, color="tab:red", label="errors/s")
    middle.set_ylabel("errors/s")
    bottom.plot(x, [p if p is not None else math.nan for p in series.p99_ms],
                color="tab:purple", label="p99")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_xlabel("seconds since the start of the run")
    for index, event in enumerate(report.events):
        if event.applied_s is None:
            continue
        start = event.applied_s
        end = event.undone_s if event.undone_s is not None else report.heal_s
        for axis in (top, middle, bottom):
            axis.axvspan(start, max(end, start + series.bucket_s / 4),
                         color=f"C{index % 10}", alpha=0.15, zorder=0)
        top.annotate(event.description, (start, 1.0), xycoords=("data", "axes fraction"),
                     fontsize="x-small", rotation=0, va="bottom", ha="left")
    for axis in (top, middle, bottom):
        axis.axvline(report.heal_s, color="black", linestyle=":", linewidth=1)
        axis.grid(alpha=0.3)
        axis.set_ylim(bottom=0)
    verdict = "PASS" if report.ok else "FAIL"
    fig.suptitle(f"dynalab experiment {report.experiment.name}: {verdict} (dotted: heal)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
