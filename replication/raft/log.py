"""RaftLog: the replica's view of its log = what the LogStore holds + what is not yet persisted.

As in etcd's raftLog/unstable: new entries (and a received snapshot) sit in memory until a Ready
hands them to the driver and `advance` confirms they were persisted. Entries handed out but not
yet confirmed are "in progress"; a truncation that reaches them makes the core hand the
replacements out again.
"""
from __future__ import annotations

from replication.logstore import CompactedError, LogStore
from replication.types import Entry, Snapshot


class RaftLog:
    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.unstable: list[Entry] = []
        self.offset = store.last_index() + 1  # index of unstable[0]
        self.unstable_snapshot: Snapshot | None = None
        self.snapshot_in_progress = False
        self.in_progress = store.last_index()  # entries <= this were handed out to persist
        snap_index = store.snapshot().meta.index
        # A commit index past the log can only come from a store that lost a write it
        # promised to keep; never hand out entries we do not have.
        self.committed = min(max(store.hard_state().commit, snap_index), self.last_index())
        self.applying = snap_index  # committed entries <= this were handed out to apply
        self.applied = snap_index

    # -- reading -----------------------------------------------------------------------------

    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index + 1
        return self.store.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.offset + len(self.unstable) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index
        return self.store.last_index()

    def term(self, index: int) -> int | None:
        """Term at `index`, or None if it was compacted away or lies past the end."""
        if index >= self.offset:
            pos = index - self.offset
            return self.unstable[pos].term if pos < len(self.unstable) else None
        snap = self.unstable_snapshot
        if snap is not None:
            return snap.meta.term if index == snap.meta.index else None
        try:
            return self.store.term(index)
        except (CompactedError, IndexError):
            return None

    def last_term(self) -> int:
        return self.term(self.last_index()) or 0

    def matches(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a candidate's log at least as up to date as ours (Raft §5.4.1)?"""
        ours = self.last_term()
        return last_term > ours or (last_term == ours and last_index >= self.last_index())

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry] | None:
        """Entries [lo, hi) up to max_bytes (at least one); None if lo was compacted."""
        if lo < self.first_index():
            return None
        hi = min(hi, self.last_index() + 1)
        out: list[Entry] = []
        if lo < self.offset:
            try:
                out = self.store.entries(lo, min(hi, self.offset), max_bytes)
            except CompactedError:
                return None
            if len(out) < min(hi, self.offset) - lo:
                return out  # the byte budget ran out inside the stable part
        if hi > self.offset:
            start = max(lo, self.offset) - self.offset
            budget = None if max_bytes is None else max_bytes - sum(len(e.data) for e in out)
            for entry in self.unstable[start:hi - self.offset]:
                if out and budget is not None:
                    budget -= len(entry.data)
                    if budget < 0:
                        break
                out.append(entry)
        return out

    # -- changing ----------------------------------------------------------------------------

    def append(self, entries: list[Entry]) -> None:
        """Append entries that follow on from index entries[0].index - 1, replacing any tail."""
        first = entries[0].index
        if first <= self.offset:
            # Replaces all unstable entries, and possibly a stable tail the store will overwrite.
            self.offset = first
            self.unstable = list(entries)
        else:
            del self.unstable[first - self.offset:]
            self.unstable.extend(entries)
        self.in_progress = min(self.in_progress, first - 1)

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """First index of `entries` whose term differs from ours (or that we lack); 0 if none."""
        for entry in entries:
            if not self.matches(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest index <= `index` whose term is <= `term` (lets a leader skip a whole term)."""
        while index > 0:
            ours = self.term(index)
            if ours is None or ours <= term:
                return index
            index -= 1
        return 0

    def commit_to(self, index: int) -> bool:
        if index > self.committed:
            self.committed = index
            return True
        return False

    def restore(self, snapshot: Snapshot) -> None:
        self.unstable_snapshot = snapshot
        self.snapshot_in_progress = False
        self.unstable = []
        self.offset = snapshot.meta.index + 1
        self.in_progress = snapshot.meta.index
        self.committed = snapshot.meta.index
        self.applying = max(self.applying, snapshot.meta.index)

    # -- the Ready cycle -------------------------------------------------------------------

    def take_unpersisted(self) -> tuple[tuple[Entry, ...], Snapshot | None]:
        """Entries and snapshot to hand out for persisting; marks them in progress."""
        snap = None
        if self.unstable_snapshot is not None and not self.snapshot_in_progress:
            snap = self.unstable_snapshot
            self.snapshot_in_progress = True
        start = max(self.in_progress + 1, self.offset) - self.offset
        entries = tuple(self.unstable[start:])
        if entries:
            self.in_progress = entries[-1].index
        return entries, snap

    def has_unpersisted(self) -> bool:
        snap_pending = self.unstable_snapshot is not None and not self.snapshot_in_progress
        return snap_pending or self.last_index() > self.in_progress

    def take_committed(self) -> tuple[Entry, ...]:
        """Committed entries not yet handed out, limited to those handed out for persisting (the
        driver persists a Ready before applying it)."""
        hi = min(self.committed, self.in_progress)
        if hi <= self.applying:
            return ()
        out = self.entries(self.applying + 1, hi + 1)
        if not out:
            return ()
        self.applying = out[-1].index
        return tuple(out)

    def has_committed_to_apply(self) -> bool:
        return min(self.committed, self.in_progress) > self.applying

    def stable_to(self, index: int, term: int) -> bool:
        """The driver persisted entries up to (index, term); forget them if still ours."""
        if index < self.offset or not self.matches(index, term):
            return False  # replaced while being persisted; the replacement follows
        del self.unstable[:index + 1 - self.offset]
        self.offset = index + 1
        return True

    def stable_snapshot_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.meta.index == index:
            self.unstable_snapshot = None
            self.snapshot_in_progress = False

    def applied_to(self, index: int) -> None:
        self.applied = max(self.applied, index)
