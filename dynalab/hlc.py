"""Hybrid-logical-clock timestamps and the last-writer-wins order of global tables (pure).

DESIGN.md, "Global tables": every item of a global table carries a `Timestamp` (wall-clock
milliseconds plus a logical counter) and the region that wrote it. Two versions of an item are
ordered by `Version` = (timestamp, region): the greater one wins, everywhere, whatever order the
regions see them in, so replicas converge. The region breaks timestamp ties (lexically), so the
order is total.

Why hybrid and not plain wall clock: a write that follows another write of the same item (it could
have read it) must win even when its region's clock is behind. `write_timestamp` makes that so:
the new timestamp is at least one logical tick past the stored one, so causality never depends on
clocks agreeing (docs/cluster.md, "Hidden bookkeeping"). `HybridClock` is the classic node-wide
HLC (Kulkarni et al.): `now()` never goes backwards and `observe()` pulls it past a timestamp seen
from elsewhere; the wall clock is injected, so tests drive it.

Wire form: a timestamp is `[wall_ms, logical]`; a version is `{"ts": [w, l], "origin": region}`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = ["Timestamp", "Version", "ZERO", "HybridClock", "write_timestamp", "wins"]


def _check_count(value: object, what: str) -> int:
    # bool is an int in Python; a True timestamp is a bug, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, not {value!r}")
    return value


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """A hybrid-logical-clock reading; ordered by (wall_ms, logical)."""

    wall_ms: int
    logical: int = 0

    def __post_init__(self) -> None:
        _check_count(self.wall_ms, "wall_ms")
        _check_count(self.logical, "logical")

    def tick(self) -> Timestamp:
        """The smallest timestamp greater than this one."""
        return Timestamp(self.wall_ms, self.logical + 1)

    def to_wire(self) -> list[int]:
        return [self.wall_ms, self.logical]

    @classmethod
    def from_wire(cls, raw: Sequence[int]) -> Timestamp:
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence) or len(raw) != 2:
            raise ValueError(f"a timestamp is [wall_ms, logical], not {raw!r}")
        return cls(_check_count(raw[0], "wall_ms"), _check_count(raw[1], "logical"))


ZERO = Timestamp(0, 0)


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """Who wrote an item version and when: the LWW order is (ts, region), compared in that order."""

    ts: Timestamp
    region: str

    def __post_init__(self) -> None:
        if not isinstance(self.region, str) or not self.region:
            raise ValueError(f"a version needs a region name, not {self.region!r}")

    def to_wire(self) -> dict[str, Any]:
        return {"ts": self.ts.to_wire(), "origin": self.region}

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Version:
        """From `{"ts": [w, l], "origin": region}` (a change record or a ReplicaApply change)."""
        return cls(Timestamp.from_wire(raw["ts"]), raw["origin"])


def wins(candidate: Version, stored: Version | None) -> bool:
    """Whether a change with version `candidate` replaces what is stored (None: nothing stored,
    not even a tombstone). Strictly greater: applying the same change twice changes nothing."""
    return stored is None or candidate > stored


def write_timestamp(stamped_wall_ms: int, stored: Timestamp | None) -> Timestamp:
    """The timestamp of a local write whose leader stamped `stamped_wall_ms`, over the item's
    stored timestamp (None: no item, no tombstone): max((wall, 0), stored + 1 tick). A write that
    follows another of the same item thus always orders after it, whatever the clocks say."""
    own = Timestamp(stamped_wall_ms, 0)
    if stored is None:
        return own
    return max(own, stored.tick())


class HybridClock:
    """A node-wide HLC over an injected wall clock (milliseconds). Monotonic even when the wall
    clock steps back, and past every timestamp passed to `observe`."""

    def __init__(self, wall_ms: Callable[[], int], start: Timestamp = ZERO) -> None:
        self._wall_ms = wall_ms
        self._last = start

    @property
    def last(self) -> Timestamp:
        return self._last

    def now(self) -> Timestamp:
        """A timestamp greater than every one this clock gave or observed before."""
        self._last = max(Timestamp(self._wall_ms(), 0), self._last.tick())
        return self._last

    def observe(self, remote: Timestamp) -> Timestamp:
        """Take in a timestamp from elsewhere (a replicated change); later `now()`s exceed it."""
        self._last = max(self._last, remote)
        return self._last
