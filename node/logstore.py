"""The RocksDB LogStore: one RocksDB per node holds the Raft logs of every group the node hosts.

Layout (raw byte keys, so RocksDB's bytewise order is the order we scan in):
  column family "raft_log":   group_key(g) + u64be(index)  ->  u64be(term) u8(kind) data
  column family "raft_state": group_key(g) + b"h"          ->  hard state
                              group_key(g) + b"m"          ->  snapshot meta
                              group_key(g) + b"d"          ->  snapshot data
group_key(g) is a u16be length then the UTF-8 name, so no group's keys are a prefix of another's
and entries(lo, hi) of one group is one contiguous range scan.

Writes go through `RocksLogEngine.persist_many`: the Readies of many groups become ONE WriteBatch
written with sync=True (one WAL fsync), which is both the atomicity and the group commit.
Each store keeps its hard state, snapshot meta, last index and a short tail of recent entries in
one immutable `_GroupState`, swapped in after the write succeeds: the hot path (term(), recent
entries) never reads RocksDB, and a failed write leaves the cache as it was.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from rocksdict import Options, ReadOptions, Rdict, WriteBatch, WriteOptions

from replication.driver import GroupWrite
from replication.logstore import CompactedError
from replication.types import ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta

LOG_CF = "raft_log"
STATE_CF = "raft_state"

_U64 = struct.Struct(">Q")
_ENTRY_HEAD = struct.Struct(">QB")  # term, kind; the index lives in the key
_HARD_HEAD = struct.Struct(">QQB")  # term, commit, has_vote; then the vote's UTF-8
_META_HEAD = struct.Struct(">QQ")  # index, term; then voters and learners
_U16 = struct.Struct(">H")
_HARD_KEY, _META_KEY, _DATA_KEY = b"h", b"m", b"d"


# ---------------------------------------------------------------------------- encoding

def _group_key(group: str) -> bytes:
    raw = group.encode()
    return _U16.pack(len(raw)) + raw


def _log_key(gkey: bytes, index: int) -> bytes:
    return gkey + _U64.pack(index)


def _encode_entry(entry: Entry) -> bytes:
    return _ENTRY_HEAD.pack(entry.term, int(entry.kind)) + entry.data


def _decode_entry(index: int, value: bytes) -> Entry:
    term, kind = _ENTRY_HEAD.unpack_from(value)
    return Entry(term=term, index=index, kind=EntryKind(kind), data=value[_ENTRY_HEAD.size:])


def _encode_hard(hard: HardState) -> bytes:
    vote = b"" if hard.vote is None else hard.vote.encode()
    return _HARD_HEAD.pack(hard.term, hard.commit, hard.vote is not None) + vote


def _decode_hard(value: bytes) -> HardState:
    term, commit, has_vote = _HARD_HEAD.unpack_from(value)
    vote = value[_HARD_HEAD.size:].decode() if has_vote else None
    return HardState(term=term, vote=vote, commit=commit)


def _pack_strs(items: Sequence[str]) -> bytes:
    out = [_U16.pack(len(items))]
    for item in items:
        raw = item.encode()
        out += [_U16.pack(len(raw)), raw]
    return b"".join(out)


def _unpack_strs(value: bytes, pos: int) -> tuple[tuple[str, ...], int]:
    (count,) = _U16.unpack_from(value, pos)
    pos += _U16.size
    items = []
    for _ in range(count):
        (size,) = _U16.unpack_from(value, pos)
        pos += _U16.size
        items.append(value[pos:pos + size].decode())
        pos += size
    return tuple(items), pos


def _encode_meta(meta: SnapshotMeta) -> bytes:
    return (_META_HEAD.pack(meta.index, meta.term)
            + _pack_strs(meta.conf.voters) + _pack_strs(meta.conf.learners))


def _decode_meta(value: bytes) -> SnapshotMeta:
    index, term = _META_HEAD.unpack_from(value)
    voters, pos = _unpack_strs(value, _META_HEAD.size)
    learners, _ = _unpack_strs(value, pos)
    return SnapshotMeta(index=index, term=term, conf=ConfState(voters=voters, learners=learners))


# ---------------------------------------------------------------------------- values

@dataclass(frozen=True, slots=True)
class _GroupState:
    """Everything the hot path needs, swapped as one object so readers never see half a write."""

    hard: HardState = field(default_factory=HardState)
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    last_index: int = 0
    tail: tuple[Entry, ...] = ()  # the most recent entries, contiguous, ending at last_index


# ---------------------------------------------------------------------------- store

class RocksLogStore:
    """The LogStore of one group inside a RocksLogEngine. Obtain it with `engine.store(group)`."""

    def __init__(self, engine: RocksLogEngine, group: str, state: _GroupState) -> None:
        self._engine = engine
        self._group = group
        self._gkey = _group_key(group)
        self._state = state

    @property
    def group(self) -> str:
        return self._group

    def hard_state(self) -> HardState:
        return self._state.hard

    def conf_state(self) -> ConfState:
        return self._state.meta.conf

    def snapshot(self) -> Snapshot:
        meta = self._state.meta
        if meta.index == 0:
            return Snapshot(meta=meta)
        data = self._engine._state_cf.get(self._gkey + _DATA_KEY)
        return Snapshot(meta=meta, data=data or b"")

    def first_index(self) -> int:
        return self._state.meta.index + 1

    def last_index(self) -> int:
        return self._state.last_index

    def term(self, index: int) -> int:
        state = self._state
        base = state.meta.index
        if index < base:
            raise CompactedError(index)
        if index == base:
            return state.meta.term
        if index > state.last_index:
            raise IndexError(index)
        cached = _from_tail(state.tail, index)
        if cached is not None:
            return cached.term
        return self._read(index, index + 1, None)[0].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        state = self._state
        if lo <= state.meta.index:
            raise CompactedError(lo)
        if hi > state.last_index + 1:
            raise IndexError(hi)
        if lo >= hi:
            return []
        if state.tail and lo >= state.tail[0].index:
            start = lo - state.tail[0].index
            return _limit(state.tail[start:start + hi - lo], max_bytes)
        return self._read(lo, hi, max_bytes)

    def persist(self, hard_state: HardState | None, entries: Sequence[Entry],
                snapshot: Snapshot | None = None) -> None:
        self._engine.persist_many([GroupWrite(self._group, hard_state, entries, snapshot)])

    def compact(self, snapshot: Snapshot) -> None:
        self._engine._compact(self, snapshot)

    # -- used by the engine

    def _read(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        opts = ReadOptions()
        opts.set_iterate_upper_bound(_log_key(self._gkey, hi))
        it = self._engine._log_cf.iter(opts)
        it.seek(_log_key(self._gkey, lo))
        out: list[Entry] = []
        size = 0
        for expected in range(lo, hi):  # bounded by the range; a hole means a corrupt log
            if not it.valid():
                break
            index = _U64.unpack_from(it.key(), len(self._gkey))[0]
            if index != expected:
                raise RuntimeError(f"group {self._group!r}: log hole at {expected} (found {index})")
            entry = _decode_entry(index, it.value())
            size += len(entry.data)
            if out and max_bytes is not None and size > max_bytes:
                break
            out.append(entry)
            it.next()
        del it
        return out

    def _stage(self, wb: WriteBatch, write: GroupWrite) -> tuple[_GroupState, bool]:
        """Add `write` to `wb`; return the state this store has once `wb` is written, and
        whether the write must be synced (see RocksLogEngine.write_many)."""
        state = self._state
        must_sync = False
        if write.snapshot is not None and write.snapshot.meta.index > state.meta.index:
            state = self._stage_install(wb, state, write.snapshot)
            must_sync = True
        if write.entries:
            state = self._stage_append(wb, state, write.entries)
            must_sync = True
        hard = write.hard_state
        if hard is not None and hard != state.hard:
            wb.put(self._gkey + _HARD_KEY, _encode_hard(hard), self._engine._state_h)
            old = state.hard
            must_sync = must_sync or hard.term != old.term or hard.vote != old.vote
            state = _GroupState(hard, state.meta, state.last_index, state.tail)
        return state, must_sync

    def _stage_install(self, wb: WriteBatch, state: _GroupState, snap: Snapshot) -> _GroupState:
        index = snap.meta.index
        # Keep log entries past the snapshot only if the log agrees with it at its index.
        agrees = state.meta.index < index <= state.last_index and self.term(index) == snap.meta.term
        drop_to = index if agrees else state.last_index
        self._delete_log(wb, state.meta.index + 1, drop_to + 1)
        self._put_snapshot(wb, snap)
        if agrees:
            tail = tuple(e for e in state.tail if e.index > index)
            return _GroupState(state.hard, snap.meta, state.last_index, tail)
        return _GroupState(state.hard, snap.meta, index, ())

    def _stage_append(self, wb: WriteBatch, state: _GroupState,
                      entries: Sequence[Entry]) -> _GroupState:
        base = state.meta.index
        if entries[0].index <= base:  # already covered by the snapshot
            entries = [e for e in entries if e.index > base]
            if not entries:
                return state
        first = entries[0].index
        if first > state.last_index + 1:
            raise ValueError(f"gap: appending {first} after {state.last_index}")
        # An entry at an index already held replaces it and everything after it.
        self._delete_log(wb, first, state.last_index + 1)
        log_h = self._engine._log_h
        for entry in entries:
            wb.put(_log_key(self._gkey, entry.index), _encode_entry(entry), log_h)
        tail = state.tail
        if tail and first <= tail[-1].index:  # a replaced suffix leaves the cache too
            tail = tail[:max(0, first - tail[0].index)]
        tail = tail + tuple(entries)
        keep = self._engine.tail_cache_entries
        if len(tail) > keep:
            tail = tail[len(tail) - keep:]
        return _GroupState(state.hard, state.meta, entries[-1].index, tail)

    def _stage_compact(self, wb: WriteBatch, snap: Snapshot) -> _GroupState:
        state = self._state
        self._delete_log(wb, state.meta.index + 1, min(snap.meta.index, state.last_index) + 1)
        self._put_snapshot(wb, snap)
        tail = tuple(e for e in state.tail if e.index > snap.meta.index)
        last = max(state.last_index, snap.meta.index)
        return _GroupState(state.hard, snap.meta, last, tail)

    def _delete_log(self, wb: WriteBatch, lo: int, hi: int) -> None:
        if lo < hi:
            wb.delete_range(_log_key(self._gkey, lo), _log_key(self._gkey, hi), self._engine._log_h)

    def _put_snapshot(self, wb: WriteBatch, snap: Snapshot) -> None:
        state_h = self._engine._state_h
        wb.put(self._gkey + _META_KEY, _encode_meta(snap.meta), state_h)
        wb.put(self._gkey + _DATA_KEY, snap.data, state_h)

    def _commit(self, state: _GroupState) -> None:
        self._state = state


def _from_tail(tail: tuple[Entry, ...], index: int) -> Entry | None:
    if not tail or index < tail[0].index:
        return None
    return tail[index - tail[0].index]


def _limit(entries: Sequence[Entry], max_bytes: int | None) -> list[Entry]:
    if max_bytes is None:
        return list(entries)
    out: list[Entry] = []
    size = 0
    for entry in entries:
        size += len(entry.data)
        if out and size > max_bytes:
            break
        out.append(entry)
    return out


# ---------------------------------------------------------------------------- engine

class RocksLogEngine:
    """One RocksDB holding the logs of many groups; `persist_many` is the group commit."""

    def __init__(self, path: str | os.PathLike[str], *, tail_cache_entries: int = 256,
                 extra_column_families: Sequence[str] = ()) -> None:
        self.tail_cache_entries = tail_cache_entries
        opts = _options()
        # Extra column families (the node's state machines) share the DB, so that their writes
        # and the log's can never disagree about which DB they went to.
        cfs = {LOG_CF: _options(), STATE_CF: _options(),
               **{name: _options() for name in extra_column_families}}
        self._db = Rdict(os.fspath(path), opts, column_families=cfs)
        self._log_cf = self._db.get_column_family(LOG_CF)
        self._state_cf = self._db.get_column_family(STATE_CF)
        self._log_h = self._db.get_column_family_handle(LOG_CF)
        self._state_h = self._db.get_column_family_handle(STATE_CF)
        self._nosync = WriteOptions()
        self._nosync.sync = False
        self._sync = WriteOptions()
        self._sync.sync = True
        self._flush_wal = getattr(self._db, "flush_wal", None)
        # persist_many's RocksDB writes, and how many of them were synced (for measurements)
        self.stats: dict[str, int] = {"writes": 0, "synced": 0}
        self._stores: dict[str, RocksLogStore] = {}

    @property
    def db(self) -> Rdict:
        """The DB handle, for the extra column families. Whoever takes column-family handles from
        it must drop them before `close()` (they keep RocksDB open)."""
        return self._db

    def store(self, group: str) -> RocksLogStore:
        """The store of `group` (created empty if the DB has nothing for it)."""
        store = self._stores.get(group)
        if store is None:
            store = RocksLogStore(self, group, self._load(group))
            self._stores[group] = store
        return store

    def groups(self) -> list[str]:
        """Groups with a hard state or snapshot on disk (what this node hosted before a restart)."""
        found: set[str] = set()
        for key in self._state_cf.keys():
            (size,) = _U16.unpack_from(key)
            found.add(key[_U16.size:_U16.size + size].decode())
        return sorted(found)

    def persist_many(self, writes: Iterable[GroupWrite]) -> None:
        """Persist the writes of many groups with one WriteBatch and one WAL fsync; on return all
        of it survives kill -9, and all that Raft needs durable survives a power cut too. A
        ValueError (log gap) in any write aborts all of them."""
        if self.write_many(writes):
            self.sync()

    def write_many(self, writes: Iterable[GroupWrite]) -> bool:
        """The first half of `persist_many`: one WriteBatch for all, written to the WAL without
        an fsync (it survives kill -9, not a power cut). True when `sync()` must follow before
        anything that depends on these writes (an ack, a vote) leaves the node.

        No sync is needed when no write holds entries, a snapshot, or a new term or vote (etcd's
        MustSync): a commit index alone needs none, since a replica that loses one recovers
        with a lower commit and learns it again from the leader. The write still goes to the
        WAL in order, so a later synced write makes it durable too. The split lets the driver
        write on its own thread and hand only the fsync, which releases the GIL, to a worker:
        rocksdict holds the GIL for all of a write, so a write in a worker gained nothing and
        cost a thread handoff per group commit."""
        wb = WriteBatch(raw_mode=True)
        staged: list[tuple[RocksLogStore, _GroupState]] = []
        seen: set[str] = set()
        sync = False
        for write in writes:
            if write.group in seen:
                raise ValueError(f"group {write.group!r} appears twice in one persist_many")
            seen.add(write.group)
            store = self.store(write.group)
            state, must_sync = store._stage(wb, write)
            staged.append((store, state))
            sync = sync or must_sync
        if not staged:
            return False
        if not wb.is_empty():
            synced_here = sync and self._flush_wal is None  # a rocksdict without flush_wal
            self._db.write(wb, self._sync if synced_here else self._nosync)
            self.stats["writes"] += 1
            self.stats["synced"] += sync
            sync = sync and not synced_here
        for store, state in staged:
            store._commit(state)
        return sync

    def sync(self) -> None:
        """fsync the WAL: every write before it survives a power cut. Releases the GIL."""
        if self._flush_wal is not None:
            self._flush_wal(True)

    def close(self) -> None:
        """Close the DB; the stores handed out must not be used afterwards."""
        if not hasattr(self, "_log_cf"):  # already closed
            return
        self._stores.clear()
        # The column-family handles keep RocksDB open until they are gone too.
        del self._log_cf, self._state_cf, self._log_h, self._state_h
        self._flush_wal = None
        self._db.close()

    def _compact(self, store: RocksLogStore, snap: Snapshot) -> None:
        if snap.meta.index <= store._state.meta.index:
            return
        wb = WriteBatch(raw_mode=True)
        state = store._stage_compact(wb, snap)
        # No fsync: the batch is atomic, and losing it in a power cut only brings back the older
        # snapshot and log, which are still a valid state (the state machine re-applies).
        self._db.write(wb)
        store._commit(state)

    def _load(self, group: str) -> _GroupState:
        gkey = _group_key(group)
        hard_raw = self._state_cf.get(gkey + _HARD_KEY)
        meta_raw = self._state_cf.get(gkey + _META_KEY)
        hard = _decode_hard(hard_raw) if hard_raw is not None else HardState()
        meta = _decode_meta(meta_raw) if meta_raw is not None else SnapshotMeta()
        state = _GroupState(hard=hard, meta=meta, last_index=self._last_on_disk(gkey, meta.index))
        tail_lo = max(meta.index + 1, state.last_index - self.tail_cache_entries + 1)
        probe = RocksLogStore(self, group, state)
        tail = tuple(probe._read(tail_lo, state.last_index + 1, None))
        return _GroupState(state.hard, state.meta, state.last_index, tail)

    def _last_on_disk(self, gkey: bytes, snap_index: int) -> int:
        it = self._log_cf.iter()
        it.seek_for_prev(_log_key(gkey, 2**64 - 1))
        last = snap_index
        if it.valid() and it.key().startswith(gkey) and len(it.key()) == len(gkey) + _U64.size:
            last = max(snap_index, _U64.unpack_from(it.key(), len(gkey))[0])
        del it
        return last


def _options() -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    return opts


__all__ = ["RocksLogEngine", "RocksLogStore", "GroupWrite", "LOG_CF", "STATE_CF"]
