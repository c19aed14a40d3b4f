"""Linearizability of register histories, one register per key.

An operation is a write(v), a read returning v, or a cas(expected -> v), with the time the client
invoked it and the time it returned. Outcomes:
  ok      - it happened, at one instant between invoke and complete;
  fail    - it definitely did not happen (dropped, as Jepsen's checkers do; a cas whose condition
            failed is therefore no evidence about the value);
  unknown - the client never learned (a timeout): it may have happened at any instant after its
            invoke, or never. Unknown reads carry no information and are dropped.

Linearizability is local (Herlihy & Wing), so each key is checked on its own. Per key the search
is Wing & Gong's, as Lowe and Porcupine improved it: depth-first over "which operation takes
effect next", where an operation may go next only if no remaining operation completed before it
was invoked, memoising every (set of operations done, register value) already explored.

Two things keep it fast on long histories:
  - The done set is stored as (f, window): every definite op before index f (in invoke order) is
    done, and `window` is a bit mask of the done ones after f. Its size follows the concurrency,
    not the history length.
  - An unknown write is only ever placed immediately before an operation that observes its value
    (a read of it, or a cas expecting it). Any linearization can be rewritten into that form by
    deleting unknown writes nobody observed, so nothing is lost, and the search never branches on
    "maybe that timed-out write happened here".

Equal times count as concurrent: an op that completes at t does not precede one invoked at t.
Values must be hashable; the register starts at `initial` (None: absent).
"""
from __future__ import annotations

import enum
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Hashable, Iterable, Iterator, Sequence

__all__ = [
    "DEFAULT_SEARCH_BUDGET",
    "LinearizabilityResult",
    "Op",
    "Outcome",
    "Violation",
    "check_linearizable",
    "check_register",
]

# Explored configurations per key before giving up and calling the key inconclusive.
DEFAULT_SEARCH_BUDGET = 2_000_000
READ, WRITE, CAS = "read", "write", "cas"
_INF = math.inf


class Outcome(enum.Enum):
    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Op:
    key: Hashable
    kind: str  # "read", "write" or "cas"
    value: Hashable  # written, read (None = absent), or cas's new value
    invoke_s: float
    # When it returned. For an unknown outcome it is informational only (None if it never
    # returned): the request may still take effect later, after the client gave up.
    complete_s: float | None
    outcome: Outcome = Outcome.OK
    expected: Hashable = None  # cas only
    client: Hashable = None  # who issued it, for explanations

    def __post_init__(self) -> None:
        if self.kind not in (READ, WRITE, CAS):
            raise ValueError(f"unknown operation kind {self.kind!r}")
        if self.complete_s is None and self.outcome is not Outcome.UNKNOWN:
            raise ValueError("only an unknown-outcome operation may lack a completion time")
        if self.complete_s is not None and self.complete_s < self.invoke_s:
            raise ValueError(f"operation completes before it is invoked: {self}")

    @classmethod
    def write(cls, key: Hashable, value: Hashable, invoke_s: float, complete_s: float | None,
              outcome: Outcome = Outcome.OK, client: Hashable = None) -> Op:
        return cls(key, WRITE, value, invoke_s, complete_s, outcome, None, client)

    @classmethod
    def read(cls, key: Hashable, value: Hashable, invoke_s: float, complete_s: float | None,
             outcome: Outcome = Outcome.OK, client: Hashable = None) -> Op:
        return cls(key, READ, value, invoke_s, complete_s, outcome, None, client)

    @classmethod
    def cas(cls, key: Hashable, expected: Hashable, value: Hashable, invoke_s: float,
            complete_s: float | None, outcome: Outcome = Outcome.OK,
            client: Hashable = None) -> Op:
        return cls(key, CAS, value, invoke_s, complete_s, outcome, expected, client)

    def describe(self) -> str:
        what = {
            READ: f"read -> {self.value!r}",
            WRITE: f"write({self.value!r})",
            CAS: f"cas({self.expected!r} -> {self.value!r})",
        }[self.kind]
        end = "?" if self.complete_s is None else f"{self.complete_s:.6f}"
        who = "" if self.client is None else f"client {self.client} "
        return f"{who}{what} [{self.invoke_s:.6f}, {end}] {self.outcome.value}"


@dataclass(frozen=True, slots=True)
class Violation:
    """The shortest prefix of the key's history (by completion time) that no order explains:
    `culprit` is the operation whose completion made it unexplainable, `possible_values` what the
    register could hold given every operation that completed before it (None if not computed
    within budget), and `ops` the culprit with the operations around it."""

    key: Hashable
    culprit: Op
    possible_values: frozenset[Hashable] | None
    ops: tuple[Op, ...]

    @property
    def message(self) -> str:
        could = (
            "(not computed)"
            if self.possible_values is None
            else "{" + ", ".join(sorted(map(repr, self.possible_values))) + "}"
        )
        lines = [
            f"key {self.key!r}: {self.culprit.describe()} cannot be explained; the register "
            f"could hold {could} given every operation that completed before it",
            *(f"    {op.describe()}" for op in self.ops),
        ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    ok: bool  # every key linearizable (inconclusive keys make it False too)
    violations: tuple[Violation, ...]
    inconclusive_keys: tuple[Hashable, ...]  # search budget exhausted
    keys_checked: int
    ops_checked: int


def check_linearizable(
    history: Iterable[Op],
    *,
    initial: Hashable = None,
    search_budget: int = DEFAULT_SEARCH_BUDGET,
) -> LinearizabilityResult:
    """Check every key's register history; all keys are checked and all violations reported."""
    by_key: dict[Hashable, list[Op]] = defaultdict(list)
    count = 0
    for op in history:
        by_key[op.key].append(op)
        count += 1
    violations: list[Violation] = []
    inconclusive: list[Hashable] = []
    for key, ops in by_key.items():
        verdict = check_register(ops, initial=initial, search_budget=search_budget)
        if isinstance(verdict, Violation):
            violations.append(verdict)
        elif verdict is None:
            inconclusive.append(key)
    return LinearizabilityResult(
        ok=not violations and not inconclusive,
        violations=tuple(violations),
        inconclusive_keys=tuple(inconclusive),
        keys_checked=len(by_key),
        ops_checked=count,
    )


def check_register(
    ops: Sequence[Op], *, initial: Hashable = None, search_budget: int = DEFAULT_SEARCH_BUDGET
) -> Violation | bool | None:
    """One register's history: True if linearizable, a Violation if not, None if the search
    ran out of budget."""
    found = _Search(ops, initial, search_budget).run()
    if found is not False:
        return found
    return _explain(ops, initial, search_budget)


# -- the search -------------------------------------------------------------------------------


class _Search:
    """Depth-first search over configurations (f, window, used_unknown_mask, value)."""

    def __init__(self, ops: Sequence[Op], initial: Hashable, budget: int) -> None:
        definite = sorted(
            (op for op in ops if op.outcome is Outcome.OK), key=lambda op: op.invoke_s
        )
        unknown = sorted(
            (op for op in ops if op.outcome is Outcome.UNKNOWN and op.kind != READ),
            key=lambda op: op.invoke_s,
        )
        self.n = len(definite)
        self.invoke = [op.invoke_s for op in definite]
        self.complete = [op.complete_s for op in definite]
        self.kind = [op.kind for op in definite]
        self.value = [op.value for op in definite]
        self.expected = [op.expected for op in definite]
        self.u_invoke = [op.invoke_s for op in unknown]
        # value -> indexes of unknown writes of it, in invoke order (interchangeable: all are
        # available from their invoke on, forever, so the search only ever uses the first free)
        self.u_writes: dict[Hashable, list[int]] = defaultdict(list)
        self.u_cas: list[tuple[int, Hashable, Hashable]] = []
        for index, op in enumerate(unknown):
            if op.kind == WRITE:
                self.u_writes[op.value].append(index)
            else:
                self.u_cas.append((index, op.expected, op.value))
        self.initial = initial
        self.budget = budget

    def run(self, end_values: set[Hashable] | None = None) -> bool | None:
        """True if some order explains the history, False if none, None if out of budget.
        With `end_values`, explore everything and collect the final register values."""
        root = (0, 0, 0, self.initial)
        if self.n == 0:
            if end_values is not None:
                end_values.add(self.initial)
            return True
        seen = {root}
        stack = [self._next(*root)]
        found = False
        while stack:  # every push adds a new configuration to `seen`, which is bounded
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                continue
            if step in seen:
                continue
            seen.add(step)
            if len(seen) > self.budget:
                return None
            if step[0] == self.n:
                if end_values is None:
                    return True
                end_values.add(step[3])
                found = True
                continue
            stack.append(self._next(*step))
        return found

    def _next(
        self, f: int, window: int, used: int, value: Hashable
    ) -> Iterator[tuple[int, int, int, Hashable]]:
        """Every configuration one step on: a definite op (maybe preceded by the unknown write
        it observes), or an unknown cas that changes the value."""
        candidates, deadline = self._candidates(f, window)
        for i in candidates:
            kind = self.kind[i]
            if kind == WRITE:
                yield (*self._mark(f, window, i), used, self.value[i])
                continue
            needed = self.value[i] if kind == READ else self.expected[i]
            after = needed if kind == READ else self.value[i]
            if value == needed:
                yield (*self._mark(f, window, i), used, after)
            else:
                write = self._free_write(needed, used, deadline)
                if write is not None:
                    yield (*self._mark(f, window, i), used | 1 << write, after)
        yield from self._unknown_cas_steps(f, window, used, value, deadline)

    def _candidates(self, f: int, window: int) -> tuple[list[int], float]:
        """Definite ops that may take effect next: invoked no later than the earliest
        completion among the remaining ones (that earliest completion is the deadline)."""
        scanned: list[int] = []
        deadline = _INF
        i = f
        # Ops further on were invoked after the deadline; they cannot go next, nor lower it.
        while i < self.n and self.invoke[i] <= deadline:
            if not window >> (i - f) & 1:
                scanned.append(i)
                deadline = min(deadline, self.complete[i])
            i += 1
        return [i for i in scanned if self.invoke[i] <= deadline], deadline

    @staticmethod
    def _mark(f: int, window: int, i: int) -> tuple[int, int]:
        window |= 1 << (i - f)
        while window & 1:  # slide past the done prefix
            window >>= 1
            f += 1
        return f, window

    def _free_write(self, value: Hashable, used: int, deadline: float) -> int | None:
        for index in self.u_writes.get(value, ()):
            if self.u_invoke[index] > deadline:
                return None
            if not used >> index & 1:
                return index
        return None

    def _unknown_cas_steps(
        self, f: int, window: int, used: int, value: Hashable, deadline: float
    ) -> Iterator[tuple[int, int, int, Hashable]]:
        tried: set[tuple[Hashable, Hashable]] = set()
        for index, expected, new in self.u_cas:
            if self.u_invoke[index] > deadline:
                return
            if used >> index & 1 or (expected, new) in tried or new == value:
                continue
            tried.add((expected, new))  # identical pending ones are interchangeable
            if expected == value:
                yield f, window, used | 1 << index, new
            else:
                write = self._free_write(expected, used, deadline)
                if write is not None:
                    yield f, window, used | 1 << index | 1 << write, new


# -- explaining a violation -------------------------------------------------------------------


def _prefix(ops: Sequence[Op], cut_s: float, *, inclusive: bool) -> list[Op]:
    """The history as it stood at `cut_s`: ops done by then keep their outcome, ops still
    running become unknown (reads among them say nothing yet), later ops are left out."""
    prefix = []
    for op in ops:
        if op.invoke_s > cut_s:
            continue
        done = op.complete_s is not None and (
            op.complete_s <= cut_s if inclusive else op.complete_s < cut_s
        )
        if done or op.outcome is not Outcome.OK:
            prefix.append(op)
        elif op.kind != READ:
            prefix.append(Op(op.key, op.kind, op.value, op.invoke_s, None, Outcome.UNKNOWN,
                             op.expected, op.client))
    return prefix


def _explain(ops: Sequence[Op], initial: Hashable, budget: int) -> Violation:
    cuts = sorted(
        {op.complete_s for op in ops if op.outcome is Outcome.OK and op.complete_s is not None}
    )
    low, high = 0, len(cuts) - 1  # the whole history (cut at the last completion) fails
    while low < high:  # invariant: prefix at cuts[high] fails; bisect for the first that does
        mid = (low + high) // 2
        if _Search(_prefix(ops, cuts[mid], inclusive=True), initial, budget).run() is False:
            high = mid
        else:
            low = mid + 1
    cut_s = cuts[high]
    culprits = [op for op in ops if op.outcome is Outcome.OK and op.complete_s == cut_s]
    culprit = next((op for op in culprits if op.kind != WRITE), culprits[0])
    values: set[Hashable] = set()
    before = _Search(_prefix(ops, cut_s, inclusive=False), initial, budget).run(values)
    return Violation(
        key=culprit.key,
        culprit=culprit,
        possible_values=frozenset(values) if before else None,
        ops=_context(ops, culprit),
    )


def _context(ops: Sequence[Op], culprit: Op, writes_before: int = 3) -> tuple[Op, ...]:
    """The culprit, the ops overlapping it, and the last few writes completed before it."""
    end = culprit.complete_s if culprit.complete_s is not None else _INF
    overlapping = [
        op for op in ops
        if op.invoke_s <= end and (op.complete_s is None or op.complete_s >= culprit.invoke_s)
    ]
    earlier = sorted(
        (op for op in ops
         if op.kind != READ and op.complete_s is not None and op.complete_s < culprit.invoke_s),
        key=lambda op: op.complete_s or 0.0,
    )[-writes_before:]
    return tuple(sorted({*overlapping, *earlier}, key=lambda op: (op.invoke_s, op.kind)))
