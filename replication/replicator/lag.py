"""Replication lag per region pair (pure: the clock is passed in).

For each destination region the sender tracks the records it has read and not yet had
acknowledged (per shard, in order), so "records pending" is a count and "age of the oldest
unapplied record" is now minus that record's commit time (`time_ms`). On every ack it also takes
samples of ack time minus commit time, kept for a window, from which `snapshot` reports p50/p99.
Incoming batches are counted per source region.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["LagTracker", "percentile"]

_MAX_SAMPLES = 200_000  # bounds memory under a heavy load (about 10 s at 20k records/s)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class _Pair:
    pending: dict[tuple[str, str], collections.deque[float]] = field(default_factory=dict)
    more_unread: set[tuple[str, str]] = field(default_factory=set)
    shipped: int = 0
    samples: collections.deque[tuple[float, float]] = field(
        default_factory=lambda: collections.deque(maxlen=_MAX_SAMPLES))
    connected: bool = False


@dataclass
class _Incoming:
    applied: int = 0
    skipped: int = 0
    batches: int = 0


class LagTracker:
    def __init__(self, region: str, window_ms: float = 10_000) -> None:
        self.region = region
        self._window_ms = window_ms
        self._pairs: dict[str, _Pair] = {}
        self._incoming: dict[str, _Incoming] = {}

    def _pair(self, dest: str) -> _Pair:
        return self._pairs.setdefault(dest, _Pair())

    def add_destination(self, dest: str) -> None:
        self._pair(dest)

    def read(self, dest: str, stream: tuple[str, str], times_ms: Iterable[float]) -> None:
        """Records of `stream` (table id, shard) read for `dest` and not acknowledged yet."""
        self._pair(dest).pending.setdefault(stream, collections.deque()).extend(times_ms)

    def acked(self, dest: str, stream: tuple[str, str], count: int, now_ms: float) -> None:
        """The oldest `count` pending records of `stream` were applied at `dest`."""
        pair = self._pair(dest)
        queue = pair.pending.get(stream)
        for _ in range(min(count, len(queue) if queue else 0)):
            assert queue is not None
            pair.samples.append((now_ms, max(0.0, now_ms - queue.popleft())))
        pair.shipped += count

    def unread(self, dest: str, stream: tuple[str, str], more: bool) -> None:
        """Whether the stream holds records past what the sender has read."""
        target = self._pair(dest).more_unread
        (target.add if more else target.discard)(stream)

    def forget(self, dest: str, stream: tuple[str, str]) -> None:
        pair = self._pair(dest)
        pair.pending.pop(stream, None)
        pair.more_unread.discard(stream)

    def connected(self, dest: str, up: bool) -> None:
        self._pair(dest).connected = up

    def incoming(self, source: str, applied: int, skipped: int) -> None:
        counts = self._incoming.setdefault(source, _Incoming())
        counts.applied += applied
        counts.skipped += skipped
        counts.batches += 1

    def snapshot(self, now_ms: float) -> dict[str, Any]:
        """The lag file's document (docs/cluster.md, "Lag file")."""
        return {"region": self.region, "updated_ms": int(now_ms),
                "pairs": {f"{self.region}->{dest}": self._pair_view(pair, now_ms)
                          for dest, pair in sorted(self._pairs.items())},
                "incoming": {f"{source}->{self.region}": vars(counts).copy()
                             for source, counts in sorted(self._incoming.items())}}

    def _pair_view(self, pair: _Pair, now_ms: float) -> dict[str, Any]:
        while pair.samples and pair.samples[0][0] < now_ms - self._window_ms:
            pair.samples.popleft()
        lags = [lag for _, lag in pair.samples]
        oldest = min((q[0] for q in pair.pending.values() if q), default=None)
        return {
            "pending_records": sum(len(q) for q in pair.pending.values()),
            "more_unread": bool(pair.more_unread),
            "oldest_unapplied_age_ms": None if oldest is None else int(max(0, now_ms - oldest)),
            "shipped_records": pair.shipped,
            "apply_lag_ms": {"p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99),
                             "count": len(lags)},
            "connected": pair.connected,
        }
