"""Key choosers: which record a workload touches next, YCSB's way.

Every chooser answers `choose(n) -> int`, an index in [0, n). `n` is passed per call because
workloads with inserts (D, E) grow the key space while they run. Randomness comes only from an
injected `random.Random`, so a seed replays the same key sequence.

- `UniformChooser`: every index equally likely.
- `ScrambledZipfianChooser`: YCSB's scrambled zipfian (theta 0.99): a zipfian over a fixed space of
  10 billion items, hashed (FNV-1a 64) onto [0, n). A few keys are very hot, and which keys are
  hot does not depend on insert order, so the hot keys are spread over partitions.
- `LatestChooser`: YCSB's skewed-latest: a zipfian distance back from the newest index, so reads
  favour what was inserted last.
"""
from __future__ import annotations

import math
import random
from typing import Protocol

__all__ = [
    "KeyChooser",
    "UniformChooser",
    "Zipfian",
    "ScrambledZipfianChooser",
    "LatestChooser",
    "DISTRIBUTIONS",
    "make_chooser",
    "zeta",
    "fnv_hash64",
]

ZIPFIAN_THETA = 0.99
# YCSB's ScrambledZipfianGenerator draws from this many items and keeps zeta(ITEM_COUNT, 0.99)
# as a constant, so the (expensive) zeta never has to be computed for the real key space.
SCRAMBLED_ITEM_COUNT = 10_000_000_000
SCRAMBLED_ZETAN = 26.46902820178302

_EXACT_TERMS = 10_000  # below this many terms a plain sum is fast enough and exact
_FNV_OFFSET_BASIS_64 = 0xCBF29CE484222325
_FNV_PRIME_64 = 1099511628211
_MASK_64 = (1 << 64) - 1


class KeyChooser(Protocol):
    def choose(self, n: int) -> int:
        """An index in [0, n); n >= 1."""
        ...


def fnv_hash64(value: int) -> int:
    """YCSB's `Utils.fnvhash64`: FNV-1a over the 8 little-endian bytes, as a non-negative long."""
    hashval = _FNV_OFFSET_BASIS_64
    for _ in range(8):
        hashval ^= value & 0xFF
        value >>= 8
        hashval = (hashval * _FNV_PRIME_64) & _MASK_64
    signed = hashval - (1 << 64) if hashval >> 63 else hashval  # Java long, then Math.abs
    return abs(signed)


def _zeta_range(first: int, last: int, theta: float) -> float:
    """sum(i ** -theta for i in first..last), exact for short ranges.

    Long ranges use an Euler-Maclaurin tail (integral + end corrections), accurate to ~1e-12 here,
    so a zipfian over millions of records starts in microseconds instead of seconds.
    """
    if last < first:
        return 0.0
    if last - first < _EXACT_TERMS:
        return math.fsum(i ** -theta for i in range(first, last + 1))
    head_last = first + _EXACT_TERMS - 1
    head = math.fsum(i ** -theta for i in range(first, head_last + 1))
    a, b = float(head_last + 1), float(last)
    integral = (b ** (1 - theta) - a ** (1 - theta)) / (1 - theta)
    ends = (a ** -theta + b ** -theta) / 2
    slope = (-theta * b ** (-theta - 1) + theta * a ** (-theta - 1)) / 12
    return head + integral + ends + slope


def zeta(n: int, theta: float) -> float:
    """The generalized harmonic number H(n, theta) = sum(1 / i**theta for i in 1..n)."""
    return _zeta_range(1, n, theta)


class Zipfian:
    """YCSB's ZipfianGenerator over [0, items): index 0 is the most popular.

    Gray et al., "Quickly Generating Billion-Record Synthetic Databases" (SIGMOD 1994), as YCSB
    implements it, including the incremental zeta when the item count grows.
    """

    def __init__(self, rng: random.Random, items: int, theta: float = ZIPFIAN_THETA,
                 zetan: float | None = None) -> None:
        if not 0.0 < theta < 1.0:
            raise ValueError(f"zipfian theta must be in (0, 1), got {theta}")
        if items < 1:
            raise ValueError(f"zipfian needs at least one item, got {items}")
        self._rng = rng
        self._theta = theta
        self._alpha = 1.0 / (1.0 - theta)
        self._zeta2 = zeta(2, theta)
        self._half_pow_theta = 0.5 ** theta
        self._items = items
        self._zetan = zeta(items, theta) if zetan is None else zetan
        self._eta = self._compute_eta()

    def _compute_eta(self) -> float:
        # YCSB keeps the eta of the initial item count when the count grows (a known quirk);
        # using the current count keeps the distribution zipfian over the grown space.
        if self._items <= 2:  # next() never reaches eta then (and zetan == zeta2 would divide by 0)
            return 0.0
        return (1 - (2.0 / self._items) ** (1 - self._theta)) / (1 - self._zeta2 / self._zetan)

    def _resize(self, items: int) -> None:
        if items > self._items:
            self._zetan += _zeta_range(self._items + 1, items, self._theta)
        else:
            self._zetan = zeta(items, self._theta)
        self._items = items
        self._eta = self._compute_eta()

    def next(self, items: int | None = None) -> int:
        """A zipfian index in [0, items) (items defaults to the size given at construction)."""
        if items is not None and items != self._items:
            self._resize(items)
        u = self._rng.random()
        uz = u * self._zetan
        if uz < 1.0 or self._items == 1:
            return 0
        if uz < 1.0 + self._half_pow_theta:
            return 1
        index = int(self._items * (self._eta * u - self._eta + 1) ** self._alpha)
        return min(index, self._items - 1)


class UniformChooser:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, n: int) -> int:
        return self._rng.randrange(n)


class ScrambledZipfianChooser:
    """YCSB's ScrambledZipfianGenerator: zipfian popularity, hot keys scattered by a hash."""

    def __init__(self, rng: random.Random, theta: float = ZIPFIAN_THETA) -> None:
        zetan = SCRAMBLED_ZETAN if theta == ZIPFIAN_THETA else None
        self._zipf = Zipfian(rng, SCRAMBLED_ITEM_COUNT, theta, zetan)

    def choose(self, n: int) -> int:
        return fnv_hash64(self._zipf.next()) % n


class LatestChooser:
    """YCSB's SkewedLatestGenerator: the newest index is the most popular, then the one before..."""

    def __init__(self, rng: random.Random, theta: float = ZIPFIAN_THETA) -> None:
        self._rng = rng
        self._theta = theta
        self._zipf: Zipfian | None = None  # built on first use, when the key count is known

    def choose(self, n: int) -> int:
        if self._zipf is None:
            self._zipf = Zipfian(self._rng, n, self._theta)
        return n - 1 - self._zipf.next(n)


DISTRIBUTIONS: tuple[str, ...] = ("uniform", "zipfian", "latest")


def make_chooser(distribution: str, rng: random.Random) -> KeyChooser:
    """The chooser for a distribution name (one of DISTRIBUTIONS)."""
    if distribution == "uniform":
        return UniformChooser(rng)
    if distribution == "zipfian":
        return ScrambledZipfianChooser(rng)
    if distribution == "latest":
        return LatestChooser(rng)
    raise ValueError(
        f"unknown distribution {distribution!r}; choose from {', '.join(DISTRIBUTIONS)}")
