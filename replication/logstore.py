"""The LogStore seam: where a replica's Raft log, hard state and latest snapshot live.

The Raft core never touches a store; the driver reads a store to build a core on start-up and
writes what each Ready says must be persisted, in one atomic `persist` call, before it sends the
Ready's messages. `MemoryLogStore` is for tests and the simulator; `node/` has the RocksDB one.

Index rules (as in etcd's Storage): the snapshot covers indexes <= snapshot.meta.index; the log
holds first_index()..last_index() with first_index() == snapshot.meta.index + 1; term(i) answers
for snapshot.meta.index..last_index().
"""
from __future__ import annotations

from typing import Protocol, Sequence

from replication.types import ConfState, Entry, HardState, Snapshot


class CompactedError(LookupError):
    """The index asked for was compacted into the snapshot."""


class LogStore(Protocol):
    def hard_state(self) -> HardState: ...

    def conf_state(self) -> ConfState:
        """Membership as of the snapshot (the core replays later CONF_CHANGE entries itself)."""
        ...

    def snapshot(self) -> Snapshot: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def term(self, index: int) -> int:
        """Term of the entry at `index`; raises CompactedError below the snapshot, IndexError
        past last_index()."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi); at least one if any, then stop before exceeding max_bytes of data."""
        ...

    def persist(self, hard_state: HardState | None, entries: Sequence[Entry],
                snapshot: Snapshot | None = None) -> None:
        """Atomically and durably: install `snapshot` (dropping the log it covers), then append
        `entries` (an entry at an index already held replaces it and everything after it), then
        set `hard_state`. On return, all of it survives a crash (kill -9) of the process."""
        ...

    def compact(self, snapshot: Snapshot) -> None:
        """The state machine made `snapshot` of applied state: keep it, drop the log it covers."""
        ...


class MemoryLogStore:
    """An in-memory LogStore. "Durable" means: survives the simulator's crash of the replica."""

    def __init__(self) -> None:
        self._hard = HardState()
        self._snap = Snapshot()
        self._log: list[Entry] = []  # entries after the snapshot, contiguous

    def hard_state(self) -> HardState:
        return self._hard

    def conf_state(self) -> ConfState:
        return self._snap.meta.conf

    def snapshot(self) -> Snapshot:
        return self._snap

    def first_index(self) -> int:
        return self._snap.meta.index + 1

    def last_index(self) -> int:
        return self._snap.meta.index + len(self._log)

    def term(self, index: int) -> int:
        base = self._snap.meta.index
        if index < base:
            raise CompactedError(index)
        if index == base:
            return self._snap.meta.term
        if index > self.last_index():
            raise IndexError(index)
        return self._log[index - base - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        base = self._snap.meta.index
        if lo <= base:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise IndexError(hi)
        out: list[Entry] = []
        size = 0
        for entry in self._log[lo - base - 1:hi - base - 1]:
            size += len(entry.data)
            if out and max_bytes is not None and size > max_bytes:
                break
            out.append(entry)
        return out

    def persist(self, hard_state: HardState | None, entries: Sequence[Entry],
                snapshot: Snapshot | None = None) -> None:
        if snapshot is not None and snapshot.meta.index > self._snap.meta.index:
            self._install(snapshot)
        if entries:
            self._append(entries)
        if hard_state is not None:
            self._hard = hard_state

    def compact(self, snapshot: Snapshot) -> None:
        if snapshot.meta.index <= self._snap.meta.index:
            return
        keep_from = snapshot.meta.index - self._snap.meta.index
        self._log = self._log[keep_from:]
        self._snap = snapshot

    def _install(self, snapshot: Snapshot) -> None:
        index = snapshot.meta.index
        # Keep log entries past the snapshot only if the log agrees with it at its index.
        if self._snap.meta.index < index <= self.last_index() and self.term(index) == snapshot.meta.term:
            self._log = self._log[index - self._snap.meta.index:]
        else:
            self._log = []
        self._snap = snapshot

    def _append(self, entries: Sequence[Entry]) -> None:
        first = entries[0].index
        base = self._snap.meta.index
        if first <= base:  # already covered by the snapshot
            entries = [e for e in entries if e.index > base]
            if not entries:
                return
            first = entries[0].index
        if first > self.last_index() + 1:
            raise ValueError(f"gap: appending {first} after {self.last_index()}")
        del self._log[first - base - 1:]
        self._log.extend(entries)


__all__ = ["LogStore", "MemoryLogStore", "CompactedError"]
