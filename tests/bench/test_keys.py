"""Key choosers: the distributions have the shape YCSB gives them, and seeds replay."""
from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from chaos.workload.keys import (LatestChooser, ScrambledZipfianChooser, UniformChooser, Zipfian,
                                 fnv_hash64, make_chooser, zeta)

DRAWS = 50_000


def _counts(chooser: object, n: int, draws: int = DRAWS) -> Counter[int]:
    return Counter(chooser.choose(n) for _ in range(draws))  # type: ignore[attr-defined]


def test_zeta_matches_ycsb_constant_for_ten_billion_items() -> None:
    # YCSB hard-codes zeta(10^10, 0.99) for its scrambled zipfian; our tail formula must agree.
    assert zeta(10_000_000_000, 0.99) == pytest.approx(26.46902820178302, rel=1e-9)


@pytest.mark.parametrize("n", [1, 2, 9_999, 10_001, 123_456])
def test_zeta_equals_the_exact_sum(n: int) -> None:
    exact = math.fsum(i ** -0.99 for i in range(1, n + 1))
    assert zeta(n, 0.99) == pytest.approx(exact, rel=1e-11)


def test_zipfian_rank_frequencies_follow_the_law() -> None:
    n = 1000
    zipf = Zipfian(random.Random(7), n)
    counts = Counter(zipf.next() for _ in range(100_000))
    z = zeta(n, 0.99)
    # P(rank k) = k^-theta / zeta(n); ranks 1 and 2 are indexes 0 and 1.
    assert counts[0] / 100_000 == pytest.approx(1 / z, abs=0.006)
    assert counts[1] / 100_000 == pytest.approx(2 ** -0.99 / z, abs=0.006)
    assert counts.most_common(1)[0][0] == 0


def test_zipfian_grows_incrementally_like_a_fresh_one() -> None:
    grown = Zipfian(random.Random(1), 1000)
    for size in range(1001, 1100):
        grown.next(size)
    fresh = Zipfian(random.Random(1), 1099)
    assert grown._zetan == pytest.approx(fresh._zetan, rel=1e-12)  # noqa: SLF001


def test_scrambled_zipfian_is_skewed_and_uniform_is_not() -> None:
    n = 1000
    zipf = _counts(ScrambledZipfianChooser(random.Random(3)), n)
    flat = _counts(UniformChooser(random.Random(3)), n)
    top10 = lambda c: sum(count for _, count in c.most_common(10)) / DRAWS  # noqa: E731
    # Uniform: each key ~0.1%, the ten busiest ~1%. Zipfian 0.99: a few keys take a lot.
    assert zipf.most_common(1)[0][1] / DRAWS > 0.02
    assert top10(zipf) > 0.10
    assert flat.most_common(1)[0][1] / DRAWS < 0.004
    assert top10(flat) < 0.03


def test_scrambled_zipfian_scatters_the_hot_keys() -> None:
    # Unscrambled, the hot keys would be 0, 1, 2, ...: the hash must spread them over the space.
    hot = [k for k, _ in _counts(ScrambledZipfianChooser(random.Random(5)), 10_000).most_common(10)]
    assert max(hot) - min(hot) > 1000
    assert sorted(hot) != list(range(10))


def test_latest_favours_the_newest_indexes() -> None:
    n = 1000
    counts = _counts(LatestChooser(random.Random(11)), n)
    newest10 = sum(counts[i] for i in range(n - 10, n)) / DRAWS
    oldest500 = sum(counts[i] for i in range(500)) / DRAWS
    assert counts.most_common(1)[0][0] == n - 1
    assert newest10 > 0.3
    assert oldest500 < 0.15


def test_latest_follows_inserts() -> None:
    chooser = LatestChooser(random.Random(2))
    for n in range(1000, 1200):  # one insert per draw, like workload D
        chooser.choose(n)
    counts = _counts(chooser, 1200, 5000)
    assert counts.most_common(1)[0][0] == 1199


def test_uniform_covers_the_space_evenly() -> None:
    counts = _counts(UniformChooser(random.Random(13)), 100, 20_000)
    assert set(counts) == set(range(100))
    assert max(counts.values()) < 2 * min(counts.values())


@pytest.mark.parametrize("name", ["uniform", "zipfian", "latest"])
def test_choosers_stay_in_range_and_replay_from_a_seed(name: str) -> None:
    chooser = make_chooser(name, random.Random(99))
    for n in (1, 2, 3, 17, 1000, 3, 1):  # the space may also shrink (a fresh table)
        assert all(0 <= chooser.choose(n) < n for _ in range(200))
    assert _sequence(name, 42) == _sequence(name, 42) != _sequence(name, 43)


def _sequence(name: str, seed: int) -> list[int]:
    chooser = make_chooser(name, random.Random(seed))
    return [chooser.choose(500) for _ in range(200)]


def test_fnv_hash_is_a_non_negative_64_bit_scramble() -> None:
    values = [fnv_hash64(i) for i in range(1000)]
    assert all(0 <= v < 2**63 + 1 for v in values)
    assert len(set(values)) == 1000
    assert len({v % 10 for v in values}) == 10


def test_unknown_distribution_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown distribution"):
        make_chooser("hotspot", random.Random(1))
