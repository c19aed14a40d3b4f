"""The verdict from a history alone (chaos.experiment.verdict), on hand-made histories where the
right answer is known."""
from __future__ import annotations

from chaos.experiment.history import HistoryEntry
from chaos.experiment.spec import SteadyState
from chaos.experiment.verdict import (convergence_of, judge, lost_writes, stale_reads,
                                      steady_state,
                                      unavailability_windows)


def w(value: str, start: float, end: float, outcome: str = "ok", key: str = "k",
      client: str = "c1") -> HistoryEntry:
    return HistoryEntry(client, "r", key, "write", value, start, end, outcome)


def r(value: str | None, start: float, end: float, consistent: bool = True, key: str = "k",
      outcome: str = "ok", client: str = "c2") -> HistoryEntry:
    return HistoryEntry(client, "r", key, "read", value, start, end, outcome,
                        consistent=consistent)


def test_an_acknowledged_write_nothing_overwrote_must_be_final() -> None:
    history = [w("a", 0, 1), w("b", 2, 3)]
    assert lost_writes(history, {"k": "b"}) == []
    assert lost_writes(history, {"k": "a"}) == [history[1]]  # b was acked after a: lost
    assert lost_writes(history, {}) == []  # no final read: not judged


def test_a_concurrent_or_unknown_write_may_have_overwritten_it() -> None:
    concurrent = [w("a", 0, 2), w("b", 1, 3)]
    assert lost_writes(concurrent, {"k": "a"}) == []  # b may have gone first
    unknown_before = [w("x", 0, 0.5, outcome="unknown"), w("a", 1, 2)]
    assert lost_writes(unknown_before, {"k": "x"}) == []  # x may have taken effect late
    failed = [w("a", 1, 2), w("x", 3, 4, outcome="fail")]
    assert lost_writes(failed, {"k": None}) == [failed[0]]


def test_stale_strong_reads_are_found_and_eventual_ones_allowed() -> None:
    history = [w("a", 0, 1), w("b", 2, 3), r("a", 4, 5), r("a", 4, 5, consistent=False),
               r("b", 6, 7), r(None, 8, 9), r("zzz", 8, 9)]
    assert stale_reads(history) == [history[2], history[5], history[6]]


def test_a_read_overlapping_the_overwrite_is_not_stale() -> None:
    assert stale_reads([w("a", 0, 1), w("b", 2, 5), r("a", 3, 4)]) == []
    assert stale_reads([w("a", 0, 1, outcome="unknown"), w("b", 2, 3), r("a", 4, 5)]) == []


def test_unavailability_windows_are_gaps_without_success() -> None:
    history = [w(str(i), t, t + 0.1) for i, t in enumerate([0, 0.5, 1.0, 4.0, 4.5])]
    history.append(w("x", 2.0, 2.5, outcome="unknown"))
    assert unavailability_windows(history, 0.0, 6.0, 1.0) == [(1.1, 4.1), (4.6, 6.0)]


def test_steady_state_before_and_recovery_after_the_heal() -> None:
    settings = SteadyState(max_error_rate=0.1, window_s=1.0)
    ok_before = [w(str(i), i * 0.1, i * 0.1 + 0.01) for i in range(20)]
    errors = [w(f"e{i}", 3 + i * 0.1, 3.05 + i * 0.1, outcome="unknown") for i in range(20)]
    ok_after = [w(f"o{i}", 6 + i * 0.1, 6.01 + i * 0.1) for i in range(20)]
    result = steady_state(ok_before + errors + ok_after, settings, first_fault_s=2.5, heal_s=4.5,
                          end_s=8.0)
    assert result.before_error_rate == 0 and result.before_ok
    assert result.recovered_at_s is not None and 5.0 <= result.recovered_at_s <= 6.0
    never = steady_state(ok_before + errors, settings, 2.5, 3.0, 5.0)
    assert never.recovered_at_s is None and not never.ok


def test_judge_passes_a_clean_history_and_fails_a_lost_write() -> None:
    clean = [w("a", 0, 1), r("a", 1.5, 2), w("b", 2, 3), r("b", 3.5, 4), r("b", 4.2, 4.3),
             r("b", 5, 5.1, client="final-r")]
    settings = SteadyState(window_s=0.5)
    good = judge(clean, {"k": "b"}, settings=settings, first_fault_s=None, heal_s=3.2, end_s=5.0)
    assert good.ok and good.linearizable and good.to_json()["acknowledged_writes_lost"] == 0
    lost = clean[:-1] + [r("a", 5, 5.1, client="final-r")]
    bad = judge(lost, {"k": "a"}, settings=settings, first_fault_s=None, heal_s=3.2, end_s=5.0)
    assert not bad.ok and bad.linearizable is False and len(bad.lost_writes) == 1
    assert "cannot be explained" in bad.linearizability["violations"][0]


def test_convergence_compares_the_regions_final_values() -> None:
    assert convergence_of(None, "not a global table") == {"status": "skipped",
                                                          "reason": "not a global table"}
    same: dict[str, dict[str, str | None]] = {"us": {"k": "a", "j": None}, "eu": {"k": "a"}}
    assert convergence_of(same, None)["status"] == "ok"  # absent and missing agree
    differ = convergence_of({"us": {"k": "a"}, "eu": {"k": "b"}, "ap": {}}, None)
    assert differ["status"] == "diverged" and differ["divergent"][0].startswith("k: ")
