"""Checkers for simulated runs: Raft's safety properties and the clients' linearizability."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from replication.logstore import LogStore
from replication.types import Entry

ELECTION_SAFETY = "election_safety"  # at most one leader per term
LOG_MATCHING = "log_matching"  # same (index, term) => identical logs up to there
LEADER_COMPLETENESS = "leader_completeness"  # a new leader holds every committed entry
STATE_MACHINE_SAFETY = "state_machine_safety"  # every applied sequence is a prefix of the others
ACKED_WRITE_LOST = "acked_write_lost"  # every acknowledged write is in the final state
LINEARIZABILITY = "linearizability"  # the client history is linearizable, per key
LIVENESS = "liveness"  # after healing, the group elects a leader and converges


@dataclass(frozen=True, slots=True)
class Violation:
    property: str
    detail: str


class Op:
    """One client operation: a write of a unique value, or a read."""

    __slots__ = ("op_id", "client", "is_write", "key", "value", "invoke", "complete",
                 "ok", "via_lease", "node")

    def __init__(self, op_id: int, client: int, is_write: bool, key: str, value: int | None,
                 invoke: float) -> None:
        self.op_id = op_id
        self.client = client
        self.is_write = is_write
        self.key = key
        self.value = value  # the write's value, or what the read returned (None: never written)
        self.invoke = invoke
        self.complete: float | None = None  # None: no answer (the write may or may not happen)
        self.ok: bool | None = None  # True: done; False: definitely did nothing; None: unknown
        self.via_lease = False
        self.node = ""

    def __repr__(self) -> str:
        kind = "w" if self.is_write else "r"
        return (f"{kind}{self.op_id}({self.key}={self.value}, [{self.invoke},{self.complete}], "
                f"ok={self.ok}, lease={self.via_lease}, at {self.node})")


class SafetyChecker:
    """Watches elections and applies as they happen; first violation of each property kept."""

    def __init__(self) -> None:
        self.violations: dict[str, Violation] = {}
        self.leaders: dict[int, str] = {}
        self.committed: dict[int, Entry] = {}  # every index some replica applied
        self._next_apply: dict[str, int] = {}
        self._checked_terms: set[int] = set()

    def report(self, prop: str, detail: str) -> None:
        self.violations.setdefault(prop, Violation(prop, detail))

    def observe_leader(self, node: str, term: int, log_term: "LogTerm") -> bool:
        """Call whenever `node` is leader of `term`; True the first time it is seen."""
        holder = self.leaders.setdefault(term, node)
        if holder != node:
            self.report(ELECTION_SAFETY, f"term {term} has leaders {holder} and {node}")
            return False
        if term in self._checked_terms:
            return False
        self._checked_terms.add(term)
        self._check_completeness(node, term, log_term)
        return True

    def _check_completeness(self, node: str, term: int, log_term: "LogTerm") -> None:
        for index, entry in self.committed.items():
            if entry.term >= term:
                continue
            ours = log_term(index)
            if ours is not None and ours != entry.term:
                self.report(LEADER_COMPLETENESS, f"{node} leads term {term} with term {ours} at "
                            f"{index}, where term {entry.term} was committed")
                return
            if ours is None and not log_term.compacted(index):
                self.report(LEADER_COMPLETENESS, f"{node} leads term {term} without committed "
                            f"index {index} (term {entry.term})")
                return

    def observe_restore(self, node: str, index: int) -> None:
        self._next_apply[node] = index + 1

    def observe_apply(self, node: str, entry: Entry) -> None:
        expected = self._next_apply.get(node, entry.index)
        if entry.index != expected:
            self.report(STATE_MACHINE_SAFETY, f"{node} applied {entry.index} after "
                        f"{expected - 1}")
        self._next_apply[node] = entry.index + 1
        first = self.committed.setdefault(entry.index, entry)
        if first != entry:
            self.report(STATE_MACHINE_SAFETY, f"index {entry.index}: {node} applied "
                        f"{_short(entry)}, another replica {_short(first)}")

    def check_log_matching(self, stores: Mapping[str, LogStore]) -> None:
        logs = {node: _durable_log(store) for node, store in stores.items()}
        names = sorted(logs)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                self._match_pair(a, logs[a], b, logs[b])

    def _match_pair(self, a: str, log_a: dict[int, Entry], b: str,
                    log_b: dict[int, Entry]) -> None:
        common = sorted(set(log_a) & set(log_b), reverse=True)
        agreed = False  # walking down: once the terms agree at an index, all below must match
        for index in common:
            ea, eb = log_a[index], log_b[index]
            if ea.term == eb.term:
                agreed = True
            if agreed and ea != eb:
                self.report(LOG_MATCHING, f"{a} and {b} agree on a later entry but differ at "
                            f"{index}: {_short(ea)} vs {_short(eb)}")
                return


class LogTerm:
    """The callable a leader's log offers the completeness check."""

    def __init__(self, term_of: Callable[[int], int | None], first_index: int) -> None:
        self._term_of = term_of
        self._first = first_index

    def __call__(self, index: int) -> int | None:
        return self._term_of(index)

    def compacted(self, index: int) -> bool:
        return index < self._first


def _durable_log(store: LogStore) -> dict[int, Entry]:
    first, last = store.first_index(), store.last_index()
    if last < first:
        return {}
    return {e.index: e for e in store.entries(first, last + 1)}


def _short(entry: Entry) -> str:
    return f"(term {entry.term}, {entry.kind.name}, {entry.data[:24]!r})"


# -- linearizability ---------------------------------------------------------------------------


def check_linearizable(ops: Iterable[Op], max_states: int = 200_000) -> tuple[Violation | None,
                                                                             bool]:
    """Per-key register check (Wing & Gong with memoization, as in Knossos/Porcupine).

    Returns (violation or None, inconclusive). Writes write unique values; an unanswered write
    may take effect at any time after its invocation, or never.
    """
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    inconclusive = False
    for key in sorted(by_key):
        verdict = _check_key(by_key[key], max_states)
        if verdict is None:
            inconclusive = True
        elif verdict is not True:
            return Violation(LINEARIZABILITY, f"key {key}: {verdict}"), inconclusive
    return None, inconclusive


def _check_key(ops: list[Op], max_states: int) -> bool | str | None:
    """True if linearizable, a reason if not, None if the search ran out of budget."""
    observed = {op.value for op in ops if not op.is_write and op.ok}
    writes = {op.value: op for op in ops if op.is_write and op.ok is not False}
    for op in ops:
        if not op.is_write and op.ok and op.value is not None and op.value not in writes:
            return f"{op} read a value nobody wrote"
    # An unanswered write nobody read can be taken as never having happened.
    history = [op for op in ops if op.ok is True
               or (op.is_write and op.ok is None and op.value in observed)]
    history.sort(key=lambda op: op.invoke)
    inf = float("inf")
    invoke = [op.invoke for op in history]
    complete = [inf if op.complete is None or op.ok is None else op.complete for op in history]
    must = 0  # ops that must be linearized: everything answered
    for i, op in enumerate(history):
        if op.ok is True:
            must |= 1 << i
    n = len(history)
    seen: set[tuple[int, int | None]] = set()
    stack: list[tuple[int, int | None]] = [(0, None)]
    while stack:
        done, value = stack.pop()
        if done & must == must:
            return True
        if (done, value) in seen:
            continue
        seen.add((done, value))
        if len(seen) > max_states:
            return None
        # Candidates: not yet linearized, invoked before every pending op's completion.
        horizon = min((complete[i] for i in range(n) if not done >> i & 1), default=inf)
        for i in range(n):
            if done >> i & 1 or invoke[i] > horizon:
                continue
            op = history[i]
            if op.is_write:
                stack.append((done | 1 << i, op.value))
            elif op.value == value:
                stack.append((done | 1 << i, value))
    stale = _explain(history)
    return f"no linearization of {len(history)} ops; {stale}"


def _explain(history: list[Op]) -> str:
    """A likely culprit for the report: a read that returned a value overwritten before it began."""
    writes = [op for op in history if op.is_write]
    for read in history:
        if read.is_write or not read.ok:
            continue
        for w in writes:
            done_before = w.ok and w.complete is not None and w.complete < read.invoke
            if done_before and w.value != read.value:
                source = next((x for x in writes if x.value == read.value), None)
                if source is None or (source.complete is not None and source.complete < w.invoke):
                    return f"stale read {read} after {w} completed"
    return "see history"
