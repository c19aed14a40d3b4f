"""dynalab.hlc: the timestamp order, the LWW order of (ts, region), the causal-write rule and the
node-wide hybrid clock under a wall clock that jumps around."""
from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynalab.hlc import ZERO, HybridClock, Timestamp, Version, wins, write_timestamp

timestamps = st.builds(Timestamp, st.integers(0, 10**13), st.integers(0, 1000))
regions = st.sampled_from(["us-east-1", "eu-west-1", "ap-south-1"])
versions = st.builds(Version, timestamps, regions)


def test_timestamps_order_by_wall_then_logical() -> None:
    assert Timestamp(5, 0) < Timestamp(5, 1) < Timestamp(6, 0)
    assert Timestamp(5, 9) < Timestamp(6, 0)
    assert ZERO < Timestamp(0, 1)


@pytest.mark.parametrize("bad", [(-1, 0), (0, -1), (True, 0), (1.5, 0), ("1", 0)])
def test_timestamps_refuse_what_is_not_a_count(bad: tuple[object, object]) -> None:
    with pytest.raises(ValueError):
        Timestamp(*bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [[1], [1, 2, 3], "12", None, {"w": 1}, [1, "2"]])
def test_from_wire_refuses_malformed(raw: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        Timestamp.from_wire(raw)  # type: ignore[arg-type]


@given(versions)
def test_version_wire_round_trip(version: Version) -> None:
    assert Version.from_wire(version.to_wire()) == version


def test_region_breaks_timestamp_ties_lexically() -> None:
    ts = Timestamp(1000, 3)
    assert Version(ts, "us-east-1") > Version(ts, "eu-west-1")
    assert Version(Timestamp(1000, 4), "eu-west-1") > Version(ts, "us-east-1")


@given(st.lists(versions, min_size=1, max_size=8), st.randoms())
def test_lww_converges_whatever_the_delivery_order(changes: list[Version],
                                                   rnd: random.Random) -> None:
    """Applying the same set of changes in any order (with duplicates) leaves the maximum."""
    def replay(order: list[Version]) -> Version | None:
        stored: Version | None = None
        for change in order:
            if wins(change, stored):
                stored = change
        return stored
    shuffled = changes + rnd.sample(changes, len(changes))
    rnd.shuffle(shuffled)
    assert replay(changes) == replay(shuffled) == max(changes)


@given(versions)
def test_a_change_does_not_win_over_itself(version: Version) -> None:
    assert not wins(version, version)
    assert wins(version, None)


@given(st.lists(versions, min_size=3, max_size=3))
def test_order_is_total_and_transitive(three: list[Version]) -> None:
    a, b, c = three
    assert (a < b) + (a == b) + (a > b) == 1
    if a <= b <= c:
        assert a <= c


@given(st.integers(0, 10**13), timestamps)
def test_a_write_orders_after_the_item_it_follows_whatever_the_clock(
        wall_ms: int, stored: Timestamp) -> None:
    ts = write_timestamp(wall_ms, stored)
    assert ts > stored
    assert ts >= Timestamp(wall_ms, 0)
    assert ts == max(Timestamp(wall_ms, 0), stored.tick())


def test_the_causal_case_with_a_clock_sixty_seconds_behind() -> None:
    """v1 written in A at wall time T; B (clock T - 60 s) reads it and writes v2: v2 wins."""
    v1 = Version(write_timestamp(1_000_000, None), "us-east-1")
    v2 = Version(write_timestamp(1_000_000 - 60_000, v1.ts), "eu-west-1")
    assert v2 > v1 and wins(v2, v1)
    assert v2.ts == Timestamp(1_000_000, 1)


def test_first_write_takes_the_stamped_wall_clock() -> None:
    assert write_timestamp(42, None) == Timestamp(42, 0)


def test_hybrid_clock_is_monotonic_when_the_wall_clock_steps_back() -> None:
    walls = iter([100, 100, 90, 90, 200, 150])
    clock = HybridClock(lambda: next(walls))
    readings = [clock.now() for _ in range(6)]
    assert readings == sorted(set(readings))  # strictly increasing
    assert readings[:4] == [Timestamp(100, 0), Timestamp(100, 1), Timestamp(100, 2),
                            Timestamp(100, 3)]
    assert readings[4:] == [Timestamp(200, 0), Timestamp(200, 1)]


@given(st.lists(st.one_of(st.tuples(st.just("now"), st.integers(0, 500)),
                          st.tuples(st.just("observe"), timestamps)), max_size=40))
def test_hybrid_clock_exceeds_everything_it_gave_or_saw(steps: list[tuple[str, object]]) -> None:
    wall = [0]
    clock = HybridClock(lambda: wall[0])
    seen: list[Timestamp] = []
    for kind, arg in steps:
        if kind == "now":
            assert isinstance(arg, int)
            wall[0] = arg
            reading = clock.now()
            assert all(reading > earlier for earlier in seen)
            assert reading >= Timestamp(arg, 0)
            seen.append(reading)
        else:
            assert isinstance(arg, Timestamp)
            clock.observe(arg)
            seen.append(arg)


def test_hybrid_clock_logical_part_stays_small_when_the_wall_advances() -> None:
    ticks = itertools.count(1, 1)
    clock = HybridClock(lambda: next(ticks))
    assert all(clock.now().logical == 0 for _ in range(100))
