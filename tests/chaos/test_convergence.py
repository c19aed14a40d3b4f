"""The cross-region convergence checker."""
from __future__ import annotations

from chaos.checkers import ABSENT, CandidateWrite, check_convergence, lww_winner

ITEM_A = {"pk": {"S": "k"}, "v": {"N": "1"}}
ITEM_B = {"pk": {"S": "k"}, "v": {"N": "2"}}


def test_identical_regions_converge() -> None:
    report = check_convergence({"us-east-1": {"k": ITEM_A}, "eu-west-1": {"k": dict(ITEM_A)}})
    assert report.ok and report.keys_checked == 1 and report.divergent == ()


def test_different_values_are_reported_per_region() -> None:
    report = check_convergence({
        "us-east-1": {"k": ITEM_A, "same": ITEM_A},
        "eu-west-1": {"k": ITEM_B, "same": ITEM_A},
    })
    assert not report.ok and report.keys_checked == 2
    (divergence,) = report.divergent
    assert divergence.key == "k"
    assert divergence.values == {"us-east-1": ITEM_A, "eu-west-1": ITEM_B}
    assert "differs 'k'" in report.summary()


def test_a_key_missing_in_one_region_diverges() -> None:
    report = check_convergence({"a": {"k": ITEM_A}, "b": {}, "c": {"k": ITEM_A}})
    (divergence,) = report.divergent
    assert divergence.values == {"a": ITEM_A, "b": ABSENT, "c": ITEM_A}


def test_converged_on_the_wrong_value_is_not_lww() -> None:
    writes = {"k": [CandidateWrite(ITEM_A, 10, "us-east-1"), CandidateWrite(ITEM_B, 20, "eu-west-1")]}
    report = check_convergence({"us-east-1": {"k": ITEM_A}, "eu-west-1": {"k": ITEM_A}}, writes)
    assert report.divergent == ()
    (mismatch,) = report.not_lww
    assert mismatch.expected == ITEM_B and mismatch.winner.region == "eu-west-1"
    assert mismatch.wrong == {"us-east-1": ITEM_A, "eu-west-1": ITEM_A}


def test_lww_winner_agrees() -> None:
    writes = {"k": [CandidateWrite(ITEM_A, 10, "us-east-1"), CandidateWrite(ITEM_B, 20, "eu-west-1")]}
    assert check_convergence({"x": {"k": ITEM_B}, "y": {"k": ITEM_B}}, writes).ok


def test_timestamp_ties_break_on_region() -> None:
    tie = [CandidateWrite(ITEM_A, 5, "us-east-1"), CandidateWrite(ITEM_B, 5, "eu-west-1")]
    assert lww_winner(tie) == tie[0]  # "us-east-1" > "eu-west-1"
    assert check_convergence({"x": {"k": ITEM_A}}, {"k": tie}).ok
    reverse = lww_winner(tie, order=lambda w: (w.timestamp, w.region == "eu-west-1"))
    assert reverse == tie[1]


def test_a_winning_delete_means_absent_everywhere() -> None:
    writes = {"k": [CandidateWrite(ITEM_A, 1, "a"), CandidateWrite(None, 2, "b")]}
    assert check_convergence({"a": {}, "b": {}}, writes).ok
    report = check_convergence({"a": {"k": ITEM_A}, "b": {}}, writes)
    assert [m.wrong for m in report.not_lww] == [{"a": ITEM_A}]
    assert [d.key for d in report.divergent] == ["k"]
