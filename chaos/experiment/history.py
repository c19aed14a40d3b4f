"""The per-operation history of a register workload: what each client asked, when, and what it
learned. Times are seconds since the start of the run (monotonic clock).

Outcomes as the linearizability checker reads them:
  ok       the operation happened (a read returned a value, a write or cas was acknowledged);
  fail     it definitely did not happen (a 4xx answer, e.g. a cas whose condition failed);
  unknown  the client cannot tell (timeout, dropped connection, 5xx): a write may still take
           effect at any time after it was invoked.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import orjson

from chaos.checkers import Op, Outcome

__all__ = ["CONDITION_FAILED", "HistoryEntry", "is_load", "read_history", "to_checker_ops",
           "write_history"]

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
# Clients that are not the workload: the writes that set every key before it starts, and the
# reads of every key after it stops.
SETUP_CLIENT, FINAL_PREFIX = "setup", "final-"
CONDITION_FAILED = "ConditionalCheckFailedException"  # a fail that is not an error


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    client: str
    region: str
    key: str
    kind: str  # "read", "write" or "cas"
    value: str | None  # written, read (None = absent) or cas's new value
    invoke_s: float
    complete_s: float
    outcome: str  # "ok", "fail" or "unknown"
    expected: str | None = None  # cas only
    consistent: bool = True  # reads: ConsistentRead
    error: str | None = None  # DynamoDB error type or transport error

    @property
    def is_error(self) -> bool:
        """Counts against the steady state: not ok, except a cas that found another value."""
        return self.outcome != OK and self.error != CONDITION_FAILED

    @property
    def latency_s(self) -> float:
        return self.complete_s - self.invoke_s

    def to_op(self) -> Op:
        outcome = {OK: Outcome.OK, FAIL: Outcome.FAIL, UNKNOWN: Outcome.UNKNOWN}[self.outcome]
        # An unknown write may take effect after the client gave up: no completion bound.
        complete = None if outcome is Outcome.UNKNOWN else self.complete_s
        return Op(self.key, self.kind, self.value, self.invoke_s, complete, outcome,
                  self.expected if self.kind == "cas" else None, self.client)


def is_load(entry: HistoryEntry) -> bool:
    """An operation of the workload itself (not the setup writes or final reads)."""
    return entry.client != SETUP_CLIENT and not entry.client.startswith(FINAL_PREFIX)


def to_checker_ops(entries: Iterable[HistoryEntry]) -> list[Op]:
    """The operations the linearizability checker should see: writes, cas and strongly
    consistent reads (eventually consistent reads may be stale by design)."""
    return [e.to_op() for e in entries if e.kind != "read" or e.consistent]


def write_history(entries: Iterable[HistoryEntry], path: Path) -> None:
    with open(path, "wb") as file:
        for entry in entries:
            file.write(orjson.dumps(asdict(entry)) + b"\n")


def read_history(path: Path) -> list[HistoryEntry]:
    with open(path, "rb") as file:
        return [HistoryEntry(**orjson.loads(line)) for line in file if line.strip()]
