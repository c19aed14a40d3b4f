"""The register linearizability checker: hand-made histories with known verdicts, a brute-force
oracle on random small histories, and a 100k-operation run whose speed is reported."""
from __future__ import annotations

import random
import time
from itertools import combinations, permutations
from typing import Hashable, Sequence

import pytest

from chaos.checkers import Op, Outcome, Violation, check_linearizable, check_register

W, R, C = Op.write, Op.read, Op.cas
OK, FAIL, UNKNOWN = Outcome.OK, Outcome.FAIL, Outcome.UNKNOWN


def verdict(history: list[Op]) -> bool:
    return check_linearizable(history).ok


# -- known verdicts -----------------------------------------------------------------------------

LINEARIZABLE = {
    "empty": [],
    "read of the initial absent value": [R("k", None, 0, 1)],
    "sequential": [W("k", 1, 0, 1), R("k", 1, 2, 3), W("k", 2, 4, 5), R("k", 2, 6, 7)],
    "read concurrent with a write sees either value": [
        W("k", 1, 0, 1), W("k", 2, 2, 6), R("k", 1, 3, 4), R("k", 2, 5, 7),
    ],
    "concurrent writes in either order": [
        W("k", 1, 0, 10), W("k", 2, 1, 9), R("k", 1, 11, 12), R("k", 1, 13, 14),
    ],
    "concurrent writes, the other order": [W("k", 1, 0, 10), W("k", 2, 1, 9), R("k", 2, 11, 12)],
    "equal times are concurrent": [W("k", 1, 0, 1), R("k", None, 1, 2)],
    "unknown write took effect": [W("k", 1, 0, None, UNKNOWN), R("k", 1, 5, 6)],
    "unknown write never took effect": [W("k", 1, 0, None, UNKNOWN), R("k", None, 5, 6)],
    "unknown write took effect late": [
        W("k", 1, 0, None, UNKNOWN), W("k", 2, 1, 2), R("k", 2, 3, 4), R("k", 1, 5, 6),
    ],
    "failed write ignored": [W("k", 1, 0, 1, FAIL), R("k", None, 2, 3)],
    "unknown read ignored": [R("k", 42, 0, None, UNKNOWN), R("k", None, 1, 2)],
    "cas": [W("k", 1, 0, 1), C("k", 1, 2, 2, 3), R("k", 2, 4, 5)],
    "unknown cas took effect": [W("k", 1, 0, 1), C("k", 1, 2, 2, None, UNKNOWN), R("k", 2, 5, 6)],
    "unknown write then unknown cas": [
        W("k", 5, 0, None, UNKNOWN), C("k", 5, 6, 1, None, UNKNOWN), R("k", 6, 2, 3),
    ],
    "unknown write observed by a cas": [W("k", 7, 0, None, UNKNOWN), C("k", 7, 8, 1, 2)],
    "keys are independent": [W("a", 1, 0, 1), W("b", 2, 0, 1), R("a", 1, 2, 3), R("b", 2, 2, 3)],
}

NOT_LINEARIZABLE = {
    "stale read": [W("k", 1, 0, 1), W("k", 2, 2, 3), R("k", 1, 4, 5)],
    "lost write": [W("k", 1, 0, 1), R("k", None, 2, 3)],
    "read of a never-written value": [W("k", 1, 0, 1), R("k", 99, 2, 3)],
    "new then old (non-monotonic reads)": [
        W("k", 1, 0, 1), W("k", 2, 2, 10), R("k", 2, 3, 4), R("k", 1, 5, 6),
    ],
    "read before the write was invoked": [R("k", 1, 0, 1), W("k", 1, 2, None, UNKNOWN)],
    "failed write observed": [W("k", 1, 0, 1, FAIL), R("k", 1, 2, 3)],
    "unknown write cannot un-happen": [
        W("k", 1, 0, None, UNKNOWN), R("k", 1, 1, 2), R("k", None, 3, 4),
    ],
    "cas on the wrong value": [W("k", 1, 0, 1), C("k", 5, 6, 2, 3)],
    "one write observed twice around another": [
        W("k", 1, 0, 1), W("k", 2, 2, 3), R("k", 1, 2.5, 2.6), R("k", 2, 4, 5), R("k", 1, 6, 7),
    ],
}


@pytest.mark.parametrize("history", LINEARIZABLE.values(), ids=LINEARIZABLE.keys())
def test_linearizable_histories_pass(history: list[Op]) -> None:
    result = check_linearizable(history)
    assert result.ok and result.violations == () and result.inconclusive_keys == ()


@pytest.mark.parametrize("history", NOT_LINEARIZABLE.values(), ids=NOT_LINEARIZABLE.keys())
def test_violations_are_found(history: list[Op]) -> None:
    result = check_linearizable(history)
    assert not result.ok and len(result.violations) == 1
    assert result.violations[0].key == "k"


def test_stale_read_explanation_names_the_read_and_what_was_possible() -> None:
    (violation,) = check_linearizable(NOT_LINEARIZABLE["stale read"]).violations
    assert violation.culprit == R("k", 1, 4, 5)
    assert violation.possible_values == frozenset({2})
    assert "read -> 1" in violation.message and "{2}" in violation.message


def test_explanation_is_the_first_op_that_cannot_be_explained() -> None:
    history = [
        W("k", 1, 0, 1), R("k", 1, 2, 3),
        R("k", 7, 4, 5),  # the first impossible read
        W("k", 2, 6, 7), R("k", 3, 8, 9),  # later nonsense does not move the blame
    ]
    violation = check_register(history)
    assert isinstance(violation, Violation)
    assert violation.culprit == R("k", 7, 4, 5)
    assert violation.possible_values == frozenset({1})
    assert R("k", 3, 8, 9) not in violation.ops


def test_every_violated_key_is_reported() -> None:
    history = [
        *NOT_LINEARIZABLE["lost write"],
        *[Op(f"x{op.key}", op.kind, op.value, op.invoke_s, op.complete_s, op.outcome)
          for op in NOT_LINEARIZABLE["stale read"]],
        W("fine", 1, 0, 1), R("fine", 1, 2, 3),
    ]
    result = check_linearizable(history)
    assert {v.key for v in result.violations} == {"k", "xk"}
    assert result.keys_checked == 3 and result.ops_checked == len(history)


def test_initial_value_is_configurable() -> None:
    assert check_linearizable([R("k", 0, 0, 1)], initial=0).ok
    assert not check_linearizable([R("k", None, 0, 1)], initial=0).ok


def test_budget_exhaustion_is_inconclusive_not_a_verdict() -> None:
    history = [W("k", i, 0, 10) for i in range(12)] + [R("k", 99, 11, 12)]
    result = check_linearizable(history, search_budget=50)
    assert not result.ok and result.inconclusive_keys == ("k",) and result.violations == ()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Op("k", "increment", 1, 0, 1),
        lambda: W("k", 1, 2, 1),
        lambda: W("k", 1, 0, None, OK),
    ],
)
def test_malformed_operations_are_rejected(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


# -- brute-force oracle -------------------------------------------------------------------------


def brute_force(ops: Sequence[Op], initial: Hashable = None) -> bool:
    """Try every subset of unknown ops and every order that respects real time."""
    definite = [op for op in ops if op.outcome is OK]
    unknown = [op for op in ops if op.outcome is UNKNOWN and op.kind != "read"]
    for size in range(len(unknown) + 1):
        for chosen in combinations(unknown, size):
            for order in permutations([*definite, *chosen]):
                if respects_real_time(order) and is_legal(order, initial):
                    return True
    return False


def respects_real_time(order: Sequence[Op]) -> bool:
    # An unknown op may take effect any time after its invoke, even after the client gave up.
    return not any(
        later.outcome is OK and later.complete_s < earlier.invoke_s  # type: ignore[operator]
        for i, earlier in enumerate(order) for later in order[i + 1:]
    )


def is_legal(order: Sequence[Op], value: Hashable) -> bool:
    for op in order:
        if op.kind == "write":
            value = op.value
        elif op.kind == "read" and op.value != value:
            return False
        elif op.kind == "cas":
            if op.expected != value:
                return False
            value = op.value
    return True


def random_small_history(rng: random.Random, size: int) -> list[Op]:
    ops = []
    for _ in range(size):
        invoke = rng.randint(0, 8)
        complete = invoke + rng.randint(0, 4)
        outcome = rng.choices([OK, UNKNOWN, FAIL], weights=[7, 2, 1])[0]
        end = None if outcome is UNKNOWN and rng.random() < 0.5 else complete
        kind = rng.choices(["write", "read", "cas"], weights=[4, 4, 2])[0]
        value = rng.choice([1, 2, 3])
        if kind == "read":
            ops.append(R("k", rng.choice([None, 1, 2, 3]), invoke, end, outcome))
        elif kind == "write":
            ops.append(W("k", value, invoke, end, outcome))
        else:
            ops.append(C("k", rng.choice([None, 1, 2, 3]), value, invoke, end, outcome))
    return ops


def test_agrees_with_brute_force_on_random_small_histories() -> None:
    rng = random.Random(2024)
    verdicts = []
    for _ in range(1500):  # bounded; both verdicts occur often
        history = random_small_history(rng, rng.randint(1, 7))
        expected = brute_force(history)
        assert verdict(history) == expected, history
        verdicts.append(expected)
    assert 300 < sum(verdicts) < 1200  # the sample exercises both verdicts


# -- 100k operations ----------------------------------------------------------------------------


def simulated_history(
    rng: random.Random, keys: int, ops_per_key: int, clients_per_key: int
) -> list[Op]:
    """A linearizable history by construction: each op takes effect at a random instant inside
    its interval, applied to a real register in that order. Some writes time out (unknown:
    applied or not), some fail (not applied); cas ops fail when the value differs."""
    history: list[Op] = []
    for key in range(keys):
        planned = []
        for client in range(clients_per_key):
            t = rng.random()
            for _ in range(ops_per_key // clients_per_key):
                duration = rng.expovariate(1.0)
                planned.append((rng.uniform(t, t + duration), t, t + duration, client))
                t += duration + rng.expovariate(2.0)
        value: Hashable = None
        for serial, (_, invoke, complete, client) in enumerate(sorted(planned)):
            roll = rng.random()
            if roll < 0.45:
                history.append(R(key, value, invoke, complete, client=client))
            elif roll < 0.85:
                outcome = rng.choices([OK, UNKNOWN, FAIL], weights=[90, 7, 3])[0]
                if outcome is OK or (outcome is UNKNOWN and rng.random() < 0.5):
                    value = serial
                end = None if outcome is UNKNOWN else complete
                history.append(W(key, serial, invoke, end, outcome, client=client))
            else:
                expected = value if rng.random() < 0.6 else -1
                outcome = OK if expected == value else FAIL
                if outcome is OK:
                    value = serial
                history.append(C(key, expected, serial, invoke, complete, outcome, client=client))
    return history


@pytest.mark.parametrize(
    ("keys", "clients_per_key"), [(1000, 5), (10, 8)], ids=["1000 keys", "10 keys"]
)
def test_100k_operations(keys: int, clients_per_key: int, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(keys)
    history = simulated_history(rng, keys, 100_000 // keys, clients_per_key)
    start = time.perf_counter()
    result = check_linearizable(history)
    elapsed_s = time.perf_counter() - start
    assert result.ok and result.ops_checked == len(history) >= 99_000

    # The same history with one read corrupted must be caught, at that read.
    index = next(i for i in range(len(history) // 2, len(history)) if history[i].kind == "read"
                 and history[i].outcome is OK)
    bad = history[index]
    corrupted = [*history[:index], R(bad.key, "never written", bad.invoke_s, bad.complete_s),
                 *history[index + 1:]]
    start = time.perf_counter()
    broken = check_linearizable(corrupted)
    broken_s = time.perf_counter() - start
    assert [v.key for v in broken.violations] == [bad.key]
    assert broken.violations[0].culprit.value == "never written"
    with capsys.disabled():
        print(f"\n[linearizability] {len(history)} ops over {keys} keys, {clients_per_key} "
              f"clients/key: {elapsed_s:.2f} s ({len(history) / elapsed_s:,.0f} ops/s); "
              f"with one bad read: {broken_s:.2f} s")
