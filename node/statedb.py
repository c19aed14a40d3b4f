"""The state machines' share of the node's one RocksDB (the RocksLogEngine's DB).

Column families next to the Raft log:
  "items":   dynalab.layout storage key            ->  orjson.dumps(item)  (wire form)
  "applied": group name (UTF-8)                    ->  u64be index of the last entry applied
  "meta":    b"catalog"                            ->  the meta group's catalog (JSON)
  "versions": storage key of a global table's item  ->  orjson [wall_ms, logical, origin]
             (with no item under the key in "items": a tombstone)
  "streams": table id | partition id | 0x00 | seq   ->  a change record (JSON); seq 0 of a shard
             holds u64be of the highest seq trimmed away (node/streams.py)

State-machine writes go without fsync: the Raft log is durable, and a write lost in a power cut
takes its applied index with it (same WriteBatch), so the entries are simply applied again.
"""
from __future__ import annotations

import struct
from typing import Callable, Sequence

from rocksdict import ReadOptions, Rdict, WriteBatch, WriteOptions

from dynalab.layout import TABLE_ID_BYTES, KeyRange
from node.logstore import RocksLogEngine

__all__ = ["ITEMS_CF", "APPLIED_CF", "META_CF", "VERSIONS_CF", "STREAMS_CF", "COLUMN_FAMILIES",
           "StateDB", "Visit"]

ITEMS_CF = "items"
APPLIED_CF = "applied"
META_CF = "meta"
VERSIONS_CF = "versions"
STREAMS_CF = "streams"
COLUMN_FAMILIES = (ITEMS_CF, APPLIED_CF, META_CF, VERSIONS_CF, STREAMS_CF)

_U64 = struct.Struct(">Q")
Visit = Callable[[bytes, bytes], bool]  # (key, value) -> go on?


class StateDB:
    """Access to the state-machine column families; one per node, used from the event loop."""

    def __init__(self, engine: RocksLogEngine) -> None:
        db = engine.db
        self._db = db
        self._items = db.get_column_family(ITEMS_CF)
        self._applied = db.get_column_family(APPLIED_CF)
        self._meta = db.get_column_family(META_CF)
        self._versions = db.get_column_family(VERSIONS_CF)
        self._streams = db.get_column_family(STREAMS_CF)
        self.items_h = db.get_column_family_handle(ITEMS_CF)
        self.applied_h = db.get_column_family_handle(APPLIED_CF)
        self.meta_h = db.get_column_family_handle(META_CF)
        self.versions_h = db.get_column_family_handle(VERSIONS_CF)
        self.streams_h = db.get_column_family_handle(STREAMS_CF)
        self._nosync = WriteOptions()
        self._nosync.sync = False
        # Applied indexes are read on every apply call: kept in memory once read or written.
        # A staged index enters the cache only when its batch is written (`write`).
        self._applied_cache: dict[str, int] = {}
        self._applied_staged: list[tuple[WriteBatch, str, int]] = []
        self.writes = 0  # RocksDB writes of the state machines (for measurements)

    # -- applied index

    def applied(self, group: str) -> int:
        index = self._applied_cache.get(group)
        if index is None:
            raw = self._applied.get(group.encode())
            index = self._applied_cache[group] = 0 if raw is None else _U64.unpack(raw)[0]
        return index

    def stage_applied(self, wb: WriteBatch, group: str, index: int) -> None:
        wb.put(group.encode(), _U64.pack(index), self.applied_h)
        self._applied_staged.append((wb, group, index))

    # -- items

    def get_item(self, key: bytes) -> bytes | None:
        value: bytes | None = self._items.get(key)
        return value

    def scan(self, key_range: KeyRange, visit: Visit, reverse: bool = False) -> None:
        """Call `visit` on the items of `key_range` in key order (descending if `reverse`) until
        it returns False or the range ends. The iterator never outlives the call."""
        _scan(self._items, key_range, visit, reverse)

    # -- global tables' versions (tombstones included)

    def get_version(self, key: bytes) -> bytes | None:
        value: bytes | None = self._versions.get(key)
        return value

    def scan_versions(self, key_range: KeyRange, visit: Visit) -> None:
        _scan(self._versions, key_range, visit, False)

    # -- change records

    def get_record(self, key: bytes) -> bytes | None:
        value: bytes | None = self._streams.get(key)
        return value

    def scan_records(self, key_range: KeyRange, visit: Visit, reverse: bool = False) -> None:
        _scan(self._streams, key_range, visit, reverse)

    def table_ids(self, family: str = ITEMS_CF) -> list[str]:
        """Ids of the tables with at least one key in `family` on this node (items, versions or
        streams: all start with the table id), ascending (= key order)."""
        found: list[str] = []
        it = {ITEMS_CF: self._items, VERSIONS_CF: self._versions,
              STREAMS_CF: self._streams}[family].iter()
        try:
            it.seek_to_first()
            while it.valid():  # one seek per table, not one step per item
                prefix = it.key()[:TABLE_ID_BYTES]
                found.append(prefix.hex())
                following = int.from_bytes(prefix, "big") + 1
                if following >= 1 << (8 * TABLE_ID_BYTES):
                    break
                it.seek(following.to_bytes(TABLE_ID_BYTES, "big"))
        finally:
            del it
        return found

    # -- meta

    def get_meta(self, key: bytes) -> bytes | None:
        value: bytes | None = self._meta.get(key)
        return value

    # -- writing

    def batch(self) -> WriteBatch:
        return WriteBatch(raw_mode=True)

    def write(self, wb: WriteBatch) -> None:
        staged, self._applied_staged = self._applied_staged, []
        if not wb.is_empty():
            self._db.write(wb, self._nosync)
            self.writes += 1
        # Batches are staged and written in one go on the event loop, so what another batch
        # staged was never written (its apply failed): it must not reach the cache.
        for batch, group, index in staged:
            if batch is wb:
                self._applied_cache[group] = index

    def delete_ranges(self, wb: WriteBatch, ranges: Sequence[KeyRange]) -> None:
        """Delete the items of `ranges` and their versions (a global table's bookkeeping)."""
        for key_range in ranges:
            if key_range.low < key_range.high:
                wb.delete_range(key_range.low, key_range.high, self.items_h)
                wb.delete_range(key_range.low, key_range.high, self.versions_h)

    def delete_record_ranges(self, wb: WriteBatch, ranges: Sequence[KeyRange]) -> None:
        for key_range in ranges:
            if key_range.low < key_range.high:
                wb.delete_range(key_range.low, key_range.high, self.streams_h)

    def close(self) -> None:
        """Drop the column-family handles (they keep RocksDB open); call before engine.close()."""
        if hasattr(self, "_items"):
            del self._items, self._applied, self._meta, self.items_h, self.applied_h, self.meta_h
            del self._versions, self._streams, self.versions_h, self.streams_h


def _scan(family: Rdict, key_range: KeyRange, visit: Visit, reverse: bool) -> None:
    if key_range.low >= key_range.high:
        return
    opts = ReadOptions()
    opts.set_iterate_lower_bound(key_range.low)
    opts.set_iterate_upper_bound(key_range.high)
    it = family.iter(opts)
    try:
        if reverse:
            it.seek_to_last()
        else:
            it.seek(key_range.low)
        while it.valid():
            key = it.key()
            # rocksdict's reverse iteration walks past the lower bound: check both ends here.
            if not key_range.low <= key < key_range.high or not visit(key, it.value()):
                return
            if reverse:
                it.prev()
            else:
                it.next()
    finally:
        del it
