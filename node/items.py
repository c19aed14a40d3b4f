"""The item state machine: every partition group a node hosts, over the "items" column family.

A log entry is a JSON command, the Execute body with its operation added:
  {"op": "Write", "table": id, "write": <dynalab.writes.encode(prepared) as a JSON object>}
  {"op": "BatchWrite", "writes": [{"table": id, "write": ...}, ...]}
  {"op": "DropTable", "table": id}

Applying is deterministic (conditions are evaluated here, in log order, on every replica). A
command the client caused to fail (ConditionalCheckFailedException, ValidationException) changes
nothing and its exception object is the entry's *result*, not raised: the driver hands it to the
proposer, and the other replicas drop it. One apply call becomes one WriteBatch holding every item
change and the group's new applied index, and entries at or below the stored applied index are
skipped, because the driver applies the log again after a restart.

A group owns the ring range (start, end] of its partition: for each table the key ranges
`layout.token_ranges(table, start, end)`. Snapshots, restores, DropTable and Digest work on
exactly those ranges, across all tables present on the node.
"""
from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import orjson
from rocksdict import WriteBatch

from dynalab import layout, writes
from dynalab.errors import DynalabError, ServerError, ValidationException
from dynalab.layout import KeyRange
from dynalab.ring import Partition
from dynalab.values import Item
from node.statedb import StateDB, Visit
from replication.types import Entry, Snapshot

__all__ = ["ItemMachine", "encode_command", "WRITE_OPS", "SNAPSHOT_MAGIC"]

log = logging.getLogger(__name__)

WRITE_OPS = ("Write", "BatchWrite", "DropTable")
SNAPSHOT_MAGIC = b"DLI1"
_LEN = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def encode_command(op: str, body: Mapping[str, Any]) -> bytes:
    """The log entry for an Execute write `op` with parsed `body`."""
    if op not in WRITE_OPS:
        raise ValueError(f"not an item command: {op}")
    return orjson.dumps({**body, "op": op})


@dataclass(frozen=True, slots=True)
class _Change:
    """One staged change: put `value` under `key` (None: delete), or drop `ranges`."""

    key: bytes = b""
    value: bytes | None = None
    ranges: tuple[KeyRange, ...] = ()


class _View:
    """Items as of the entries staged so far in one apply call (the WriteBatch is unreadable)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._items: dict[bytes, bytes | None] = {}
        self._dropped: list[KeyRange] = []

    def get(self, key: bytes) -> bytes | None:
        if key in self._items:
            return self._items[key]
        if any(key in r for r in self._dropped):
            return None
        return self._db.get_item(key)

    def take(self, change: _Change) -> None:
        if change.ranges:
            self._dropped.extend(change.ranges)
            for key in [k for k in self._items if any(k in r for r in change.ranges)]:
                self._items[key] = None
        else:
            self._items[change.key] = change.value


class _Staged(_View):
    """One entry's changes over the call's view: all of them or none (a failed BatchWrite)."""

    def __init__(self, db: StateDB, base: _View) -> None:
        super().__init__(db)
        self._base = base
        self.changes: list[_Change] = []

    def get(self, key: bytes) -> bytes | None:
        if key in self._items:
            return self._items[key]
        if any(key in r for r in self._dropped):
            return None
        return self._base.get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        change = _Change(key, value)
        self.changes.append(change)
        self.take(change)


class ItemMachine:
    """StateMachine for the partition groups of one node (the `partitions` it hosts)."""

    def __init__(self, db: StateDB, partitions: Mapping[str, Partition]) -> None:
        self._db = db
        self._partitions = dict(partitions)

    # -- what a group owns

    def hosts(self, group: str) -> bool:
        return group in self._partitions

    def ranges(self, group: str, table: str) -> list[KeyRange]:
        """The group's key ranges of `table`, ascending."""
        p = self._partitions[group]
        return sorted(layout.token_ranges(table, p.start, p.end), key=lambda r: r.low)

    def owns(self, group: str, key: bytes) -> bool:
        if len(key) < layout.TABLE_ID_BYTES + 8:
            return False
        token = int.from_bytes(key[layout.TABLE_ID_BYTES:layout.TABLE_ID_BYTES + 8], "big")
        return self._partitions[group].contains(token)

    def _all_ranges(self, group: str, extra_tables: Sequence[str] = ()) -> list[KeyRange]:
        tables = sorted(set(self._db.table_ids()) | set(extra_tables))
        return [r for table in tables for r in self.ranges(group, table)]

    # -- StateMachine

    def apply(self, group: str, entries: Sequence[Entry]) -> list[object]:
        applied = self._db.applied(group)
        view = _View(self._db)
        wb = self._db.batch()
        results: list[object] = []
        last = applied
        for entry in entries:
            if entry.index <= applied:  # applied before a restart: its result went out then
                results.append(None)
                continue
            results.append(self._apply_entry(group, entry, view, wb))
            last = entry.index
        if last > applied:
            self._db.stage_applied(wb, group, last)
            self._db.write(wb)
        return results

    def snapshot(self, group: str) -> bytes:
        parts = [SNAPSHOT_MAGIC, _U64.pack(self._db.applied(group))]

        def add(key: bytes, value: bytes) -> bool:
            parts.extend((_LEN.pack(len(key)), key, _LEN.pack(len(value)), value))
            return True
        for key_range in self._all_ranges(group):
            self._db.scan(key_range, add)
        return b"".join(parts)

    def restore(self, group: str, snapshot: Snapshot) -> None:
        index = snapshot.meta.index
        if self._db.applied(group) >= index:
            # Our own state is already past it (add_group after a restart): the entries in
            # between are committed, so they are what we applied; nothing to replace.
            return
        items = _decode_snapshot(snapshot.data)
        tables = sorted({k[:layout.TABLE_ID_BYTES].hex() for k, _ in items})
        wb = self._db.batch()
        self._db.delete_ranges(wb, self._all_ranges(group, tables))
        for key, value in items:
            if not self.owns(group, key):
                raise ValueError(f"snapshot of {group} holds a key outside its range")
            wb.put(key, value, self._db.items_h)
        self._db.stage_applied(wb, group, index)
        self._db.write(wb)
        log.info("group %s: restored %d items from the snapshot at %d", group, len(items), index)

    # -- reads (served from the applied state)

    def applied(self, group: str) -> int:
        return self._db.applied(group)

    def get(self, key: bytes) -> bytes | None:
        """The stored item (orjson bytes) under a storage key."""
        return self._db.get_item(key)

    def scan(self, key_range: KeyRange, visit: Visit, reverse: bool = False) -> None:
        self._db.scan(key_range, visit, reverse)

    def digest(self, group: str) -> str:
        """sha256 over the group's items in key order (for comparing replicas)."""
        h = hashlib.sha256()

        def add(key: bytes, value: bytes) -> bool:
            h.update(_LEN.pack(len(key)) + key + _LEN.pack(len(value)) + value)
            return True
        for key_range in self._all_ranges(group):
            self._db.scan(key_range, add)
        return h.hexdigest()

    # -- applying one entry

    def _apply_entry(self, group: str, entry: Entry, view: _View, wb: WriteBatch) -> object:
        staged = _Staged(self._db, view)
        try:
            result = self._run(group, orjson.loads(entry.data), staged)
        except DynalabError as exc:  # the client's (or a router's) fault: a result, not a crash
            return exc
        except Exception as exc:  # deterministic on every replica, so still only a result
            log.exception("group %s: entry %d failed", group, entry.index)
            return ServerError(f"applying entry {entry.index} failed: {exc!r}")
        for change in staged.changes:
            view.take(change)
            if change.ranges:
                self._db.delete_ranges(wb, change.ranges)
            elif change.value is None:
                wb.delete(change.key, self._db.items_h)
            else:
                wb.put(change.key, change.value, self._db.items_h)
        return result

    def _run(self, group: str, command: Any, staged: _Staged) -> object:
        if not isinstance(command, dict):
            raise ValidationException("malformed command")
        op = command.get("op")
        if op == "Write":
            return self._write(group, command, staged)
        if op == "BatchWrite":
            batch = command.get("writes")
            if not isinstance(batch, list):
                raise ValidationException("BatchWrite needs a list of writes")
            for one in batch:
                self._write(group, one, staged)
            return {}
        if op == "DropTable":
            ranges = tuple(self.ranges(group, _table(command)))
            change = _Change(ranges=ranges)
            staged.changes.append(change)
            staged.take(change)
            return {}
        raise ValidationException(f"unknown command {op!r}")

    def check_write(self, group: str, command: Any) -> tuple[writes.PreparedWrite, bytes]:
        """The write and its storage key, if `command` is a well-formed write of this group's
        range; else ValidationException. The leader checks before proposing, apply again."""
        if not isinstance(command, dict) or not isinstance(command.get("write"), dict):
            raise ValidationException("a write needs a table and a write")
        try:
            prepared = writes.decode(orjson.dumps(command["write"]))
            key = layout.item_key(_table(command), prepared.key, prepared.schema)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValidationException(f"malformed write: {exc!r}") from None
        if not self.owns(group, key):
            raise ValidationException(f"the key does not belong to partition {group}")
        return prepared, key

    def _write(self, group: str, command: Any, staged: _Staged) -> dict[str, Any]:
        prepared, key = self.check_write(group, command)
        raw = staged.get(key)
        old: Item | None = orjson.loads(raw) if raw is not None else None
        outcome = writes.apply(prepared, old)
        if outcome.changed:
            staged.put(key, None if outcome.item is None else orjson.dumps(outcome.item))
        return {"Attributes": outcome.attributes} if outcome.attributes else {}


def _table(command: Mapping[str, Any]) -> str:
    table = command.get("table")
    if not isinstance(table, str):
        raise ValidationException("a table id is required")
    try:
        layout.table_prefix(table)
    except ValueError as exc:
        raise ValidationException(str(exc)) from None
    return table


def _decode_snapshot(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(SNAPSHOT_MAGIC):
        raise ValueError("not an item snapshot")
    pos = len(SNAPSHOT_MAGIC) + _U64.size
    items: list[tuple[bytes, bytes]] = []
    while pos < len(data):  # every record moves pos forward, so this ends
        (klen,) = _LEN.unpack_from(data, pos)
        key = data[pos + 4:pos + 4 + klen]
        pos += 4 + klen
        (vlen,) = _LEN.unpack_from(data, pos)
        items.append((key, data[pos + 4:pos + 4 + vlen]))
        pos += 4 + vlen
    return items
