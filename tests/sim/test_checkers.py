"""The checkers themselves: they accept good histories and reject bad ones."""
from __future__ import annotations

from replication.logstore import MemoryLogStore
from replication.sim.checkers import (
    ELECTION_SAFETY,
    LEADER_COMPLETENESS,
    LINEARIZABILITY,
    LOG_MATCHING,
    STATE_MACHINE_SAFETY,
    LogTerm,
    Op,
    SafetyChecker,
    check_linearizable,
)
from replication.types import Entry, EntryKind


def op(op_id: int, is_write: bool, value: int | None, invoke: float, complete: float | None,
       ok: bool | None = True, key: str = "k") -> Op:
    o = Op(op_id, 0, is_write, key, value, invoke)  # type: ignore[arg-type]
    o.complete = complete  # type: ignore[assignment]
    o.ok = ok
    return o


def test_sequential_history_is_linearizable() -> None:
    h = [op(1, True, 1, 0, 1), op(2, False, 1, 2, 3), op(3, True, 3, 4, 5), op(4, False, 3, 6, 7)]
    assert check_linearizable(h) == (None, False)


def test_concurrent_read_may_see_either_value() -> None:
    h = [op(1, True, 1, 0, 1), op(2, True, 2, 2, 5), op(3, False, 1, 3, 4), op(4, False, 2, 3, 6)]
    assert check_linearizable(h)[0] is None


def test_stale_read_is_caught() -> None:
    h = [op(1, True, 1, 0, 1), op(2, True, 2, 2, 3), op(3, False, 1, 4, 5)]
    violation, _ = check_linearizable(h)
    assert violation is not None and violation.property == LINEARIZABILITY
    assert "stale read" in violation.detail


def test_read_before_any_write_sees_nothing() -> None:
    assert check_linearizable([op(1, False, None, 0, 1), op(2, True, 1, 2, 3)])[0] is None
    assert check_linearizable([op(2, True, 1, 2, 3), op(1, False, None, 4, 5)])[0] is not None


def test_unanswered_write_may_take_effect_late_or_never() -> None:
    lost = op(2, True, 2, 1, None, ok=None)
    late = [op(1, True, 1, 0, 0.5), lost, op(3, False, 1, 5, 6), op(4, False, 2, 7, 8)]
    assert check_linearizable(late)[0] is None
    never = [op(1, True, 1, 0, 0.5), lost, op(3, False, 1, 5, 6)]
    assert check_linearizable(never)[0] is None
    # ...but once seen, it cannot be unseen.
    flip = [op(1, True, 1, 0, 0.5), lost, op(3, False, 2, 5, 6), op(4, False, 1, 7, 8)]
    assert check_linearizable(flip)[0] is not None


def test_failed_write_must_not_be_seen() -> None:
    h = [op(1, True, 1, 0, 1, ok=False), op(2, False, 1, 2, 3)]
    assert check_linearizable(h)[0] is not None


def test_keys_are_independent() -> None:
    h = [op(1, True, 1, 0, 1, key="a"), op(2, True, 2, 0, 1, key="b"),
         op(3, False, 1, 2, 3, key="a"), op(4, False, 2, 2, 3, key="b")]
    assert check_linearizable(h)[0] is None


def entry(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(term, index, EntryKind.NORMAL, data)


def test_two_leaders_in_a_term() -> None:
    checker = SafetyChecker()
    log = LogTerm(lambda i: None, 1)
    checker.observe_leader("a", 3, log)
    checker.observe_leader("b", 3, log)
    assert ELECTION_SAFETY in checker.violations


def test_different_entries_applied_at_one_index() -> None:
    checker = SafetyChecker()
    checker.observe_apply("a", entry(1, 1, b"x"))
    checker.observe_apply("b", entry(1, 2, b"y"))
    assert STATE_MACHINE_SAFETY in checker.violations


def test_a_gap_in_applied_indexes() -> None:
    checker = SafetyChecker()
    checker.observe_apply("a", entry(1, 1))
    checker.observe_apply("a", entry(3, 1))
    assert STATE_MACHINE_SAFETY in checker.violations


def test_leader_without_a_committed_entry() -> None:
    checker = SafetyChecker()
    checker.observe_apply("a", entry(1, 1))
    checker.observe_apply("a", entry(2, 2))
    checker.observe_leader("b", 3, LogTerm({1: 1}.get, 1))
    assert LEADER_COMPLETENESS in checker.violations


def test_log_matching() -> None:
    a, b = MemoryLogStore(), MemoryLogStore()
    a.persist(None, [entry(1, 1, b"x"), entry(2, 2)])
    b.persist(None, [entry(1, 1, b"y"), entry(2, 2)])  # same (2, 2), different history
    checker = SafetyChecker()
    checker.check_log_matching({"a": a, "b": b})
    assert LOG_MATCHING in checker.violations
    fine = SafetyChecker()
    c = MemoryLogStore()
    c.persist(None, [entry(1, 1, b"x"), entry(2, 3)])  # diverges at 2: allowed
    fine.check_log_matching({"a": a, "c": c})
    assert not fine.violations
