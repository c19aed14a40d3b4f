"""Judging a run from its history alone (pure: no cluster, no clock).

  lost writes      an acknowledged write whose value is not the key's final value, although no
                   other write (acknowledged or unknown) could have taken effect after it
  stale reads      a strongly consistent read that returned a value already overwritten (or
                   nothing, after a write was acknowledged) before the read was invoked; and
                   reads of values nobody wrote
  linearizability  chaos.checkers on every key's writes, cas and strong reads, final read included
  unavailability   gaps of at least `unavailable_after_s` with no successful operation
  steady state     error rate before the first fault; when the run was back at or under it for
                   `window_s` after the heal
The first three are must-be-zero; a run that fails them lost data or broke consistency.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from chaos.checkers import check_convergence, check_linearizable

from chaos.experiment.history import OK, UNKNOWN, HistoryEntry, is_load, to_checker_ops
from chaos.experiment.spec import SteadyState

__all__ = ["SteadyStateResult", "Verdict", "convergence_of", "first_good_window", "judge",
           "lost_writes", "stale_reads", "steady_state", "unavailability_windows"]

_WRITES = ("write", "cas")


def _by_key(entries: Iterable[HistoryEntry]) -> dict[str, list[HistoryEntry]]:
    grouped: dict[str, list[HistoryEntry]] = defaultdict(list)
    for entry in entries:
        grouped[entry.key].append(entry)
    return grouped


def _effective_writes(ops: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """Writes that did or may have taken effect."""
    return [e for e in ops if e.kind in _WRITES and e.outcome in (OK, UNKNOWN)]


def lost_writes(history: Sequence[HistoryEntry],
                final: Mapping[str, str | None]) -> list[HistoryEntry]:
    """Acknowledged writes that nothing overwrote, yet are not the final value (keys without a
    final read are not judged)."""
    lost = []
    for key, ops in _by_key(history).items():
        if key not in final:
            continue
        writes = _effective_writes(ops)
        for write in (w for w in writes if w.outcome == OK and w.value != final[key]):
            # Another write could go after this one unless it was acknowledged before this
            # one was even sent.
            later = [w for w in writes if w is not write and w.value != write.value
                     and not (w.outcome == OK and w.complete_s < write.invoke_s)]
            if not later:
                lost.append(write)
    return lost


def stale_reads(history: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """Strongly consistent reads that saw a value already overwritten, no value after a write
    was acknowledged, or a value no one wrote."""
    stale = []
    for ops in _by_key(history).values():
        writes = _effective_writes(ops)
        by_value = {w.value: w for w in writes}
        acked = [w for w in writes if w.outcome == OK]
        for read in (e for e in ops if e.kind == "read" and e.consistent and e.outcome == OK):
            if read.value is None:
                if any(w.complete_s < read.invoke_s for w in acked):
                    stale.append(read)
                continue
            source = by_value.get(read.value)
            if source is None:
                stale.append(read)  # a value nobody wrote (or only a failed write did)
                continue
            if source.outcome != OK:
                continue  # an unknown write may take effect late: no bound to judge by
            if any(w.value != read.value and w.invoke_s > source.complete_s
                   and w.complete_s < read.invoke_s for w in acked):
                stale.append(read)
    return stale


def unavailability_windows(history: Sequence[HistoryEntry], start_s: float, end_s: float,
                           min_gap_s: float) -> list[tuple[float, float]]:
    """Spans of at least `min_gap_s` inside [start_s, end_s] with no successful operation."""
    done = sorted(e.complete_s for e in history
                  if e.outcome == OK and start_s <= e.complete_s <= end_s)
    edges = [start_s, *done, end_s]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b - a >= min_gap_s]


@dataclass(frozen=True)
class SteadyStateResult:
    before_error_rate: float | None  # None: no operation before the first fault
    before_ok: bool
    recovered_at_s: float | None  # start of the first good window after the heal
    recovery_s: float | None  # recovered_at_s - heal time

    @property
    def ok(self) -> bool:
        return self.before_ok and self.recovered_at_s is not None


def _error_rate(entries: Sequence[HistoryEntry]) -> float | None:
    if not entries:
        return None
    return sum(e.is_error for e in entries) / len(entries)


def steady_state(history: Sequence[HistoryEntry], settings: SteadyState,
                 first_fault_s: float | None, heal_s: float, end_s: float) -> SteadyStateResult:
    ops = [e for e in history if is_load(e)]
    before = [e for e in ops if e.invoke_s < (first_fault_s if first_fault_s is not None
                                              else heal_s)]
    rate = _error_rate(before)
    before_ok = rate is None or rate <= settings.max_error_rate
    recovered = first_good_window(ops, settings, heal_s, end_s)
    return SteadyStateResult(rate, before_ok, recovered,
                             None if recovered is None else recovered - heal_s)


def first_good_window(ops: Sequence[HistoryEntry], settings: SteadyState, from_s: float,
                       end_s: float, step_s: float = 0.25) -> float | None:
    after = [e for e in ops if e.invoke_s >= from_s]
    steps = int(max(0.0, end_s - from_s - settings.window_s) / step_s) + 1
    for index in range(steps):  # bounded: one candidate start per step
        start = from_s + index * step_s
        window = [e for e in after if start <= e.invoke_s < start + settings.window_s]
        rate = _error_rate(window)
        if rate is not None and rate <= settings.max_error_rate and \
                any(e.outcome == OK for e in window):
            return start
    return None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lost_writes: tuple[HistoryEntry, ...]
    stale_reads: tuple[HistoryEntry, ...]
    linearizable: bool | None  # None: not checked (keys shared between regions)
    linearizability: dict[str, Any]
    unavailability: tuple[tuple[float, float], ...]
    steady: SteadyStateResult
    convergence: dict[str, Any]
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        steady = self.steady
        return {
            "ok": self.ok,
            "acknowledged_writes_lost": len(self.lost_writes),
            "lost_writes": [_describe(e) for e in self.lost_writes[:50]],
            "stale_strong_reads": len(self.stale_reads),
            "stale_reads": [_describe(e) for e in self.stale_reads[:50]],
            "linearizable": self.linearizable,
            "linearizability": self.linearizability,
            "unavailability_windows_s": [[round(a, 3), round(b, 3)]
                                         for a, b in self.unavailability],
            "unavailable_s": round(sum(b - a for a, b in self.unavailability), 3),
            "steady_state": {"before_error_rate": steady.before_error_rate,
                             "before_ok": steady.before_ok,
                             "recovered_at_s": steady.recovered_at_s,
                             "recovery_s": steady.recovery_s, "ok": steady.ok},
            "convergence": self.convergence,
            "counts": self.counts,
        }


def _describe(entry: HistoryEntry) -> str:
    what = {"read": f"read -> {entry.value!r}", "write": f"write({entry.value!r})",
            "cas": f"cas({entry.expected!r} -> {entry.value!r})"}[entry.kind]
    return (f"{entry.key}: {entry.client} {what} [{entry.invoke_s:.3f}, "
            f"{entry.complete_s:.3f}] {entry.outcome}")


def _linearizability(history: Sequence[HistoryEntry], check: bool) -> tuple[bool | None,
                                                                             dict[str, Any]]:
    if not check:
        return None, {"checked": False,
                      "reason": "keys are written from several regions (global tables promise "
                                "convergence, not linearizability)"}
    result = check_linearizable(to_checker_ops(history))
    return result.ok, {"checked": True, "keys": result.keys_checked, "ops": result.ops_checked,
                       "violations": [v.message for v in result.violations[:10]],
                       "inconclusive_keys": [str(k) for k in result.inconclusive_keys]}


def convergence_of(finals: Mapping[str, Mapping[str, str | None]] | None,
                   skipped: str | None) -> dict[str, Any]:
    """Whether every region ended with the same value per key (from their final reads)."""
    if finals is None or len(finals) < 2:
        return {"status": "skipped", "reason": skipped or "one region"}
    report = check_convergence({region: {k: v for k, v in values.items() if v is not None}
                                for region, values in finals.items()})
    return {"status": "ok" if report.ok else "diverged", "keys": report.keys_checked,
            "divergent": [f"{d.key}: {dict(d.values)!r}" for d in report.divergent[:20]]}


def judge(history: Sequence[HistoryEntry], final: Mapping[str, str | None], *,
          settings: SteadyState, first_fault_s: float | None, heal_s: float, end_s: float,
          check_linearizability: bool = True,
          convergence: dict[str, Any] | None = None) -> Verdict:
    """The verdict of a run. `final`: each key's value from the final consistent reads (those
    reads are in `history` too); `heal_s`: when the faults were healed; `end_s`: when the load
    stopped."""
    lost = lost_writes(history, final) if check_linearizability else []
    stale = stale_reads(history) if check_linearizability else []
    linearizable, details = _linearizability(history, check_linearizability)
    load = [e for e in history if is_load(e)]
    start_s = min((e.invoke_s for e in load), default=0.0)
    windows = unavailability_windows(load, start_s, end_s, settings.unavailable_after_s)
    steady = steady_state(history, settings, first_fault_s, heal_s, end_s)
    convergence = convergence or {"status": "skipped", "reason": "one region"}
    counts = {"operations": len(load),
              "ok": sum(e.outcome == OK for e in load),
              "fail": sum(e.outcome == "fail" for e in load),
              "unknown": sum(e.outcome == UNKNOWN for e in load),
              "errors": sum(e.is_error for e in load)}
    ok = (not lost and not stale and linearizable is not False and steady.ok
          and convergence.get("status") != "diverged")
    return Verdict(ok, tuple(lost), tuple(stale), linearizable, details, tuple(windows), steady,
                   convergence, counts)
