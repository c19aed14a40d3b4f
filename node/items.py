"""The item state machine: every partition group a node hosts, over the "items", "versions" and
"streams" column families.

A log entry is a JSON command, the Execute body with its operation and the leader's clock
(`now_ms`, stamped at propose) added:
  {"op": "Write", "table": id, "write": <dynalab.writes.encode(prepared) as a JSON object>,
   "stream": view type or null, "global": bool, "now_ms": n}
  {"op": "BatchWrite", "writes": [{"table": id, "write": ..., "stream", "global"}, ...], ...}
  {"op": "DropTable", "table": id, "now_ms": n}
  {"op": "ReplicaApply", "table": id, "key_schema": [...], "changes": [...], "now_ms": n}

Applying is deterministic (conditions are evaluated here, in log order, on every replica). A
command the client caused to fail (ConditionalCheckFailedException, ValidationException) changes
nothing and its exception object is the entry's *result*, not raised: the driver hands it to the
proposer, and the other replicas drop it. One apply call becomes one WriteBatch holding every item
change and the group's new applied index, and entries at or below the stored applied index are
skipped, because the driver applies the log again after a restart.

A group owns the ring range (start, end] of its partition: for each table the key ranges
`layout.token_ranges(table, start, end)`. Snapshots, restores, DropTable and Digest work on
exactly those ranges, across all tables present on the node, and on the group's shards.

Streams and global tables (docs/cluster.md): a write that changes an item of a table with a stream
or a global table also stages a change record (node/streams.py) in the same WriteBatch; a global
table's write also stages the item's version `(ts, origin)` in the `versions` column family (a
delete keeps it: the tombstone). A plain table's write touches neither: its path is unchanged.
After an apply call that made records, `on_records` listeners (held StreamReads, node/service.py)
are told which shards got them.
"""
from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import orjson
from rocksdict import WriteBatch

from dynalab import layout, writes
from dynalab.errors import DynalabError, ServerError, ValidationException
from dynalab.hlc import Timestamp, Version, wins, write_timestamp
from dynalab.layout import KeyRange
from dynalab.listeners import Listeners
from dynalab.ring import Partition
from dynalab.values import KEY_TYPES, Item, KeySchema, validate_key
from node import streams
from node.statedb import ITEMS_CF, STREAMS_CF, VERSIONS_CF, StateDB, Visit
from node.streams import StreamStore
from replication.types import Entry, Snapshot

__all__ = ["ItemMachine", "encode_command", "encode_command_raw", "table_id", "WRITE_OPS",
           "SNAPSHOT_MAGIC", "MAX_REPLICA_CHANGES"]

log = logging.getLogger(__name__)

WRITE_OPS = ("Write", "BatchWrite", "DropTable", "ReplicaApply")
SNAPSHOT_MAGIC = b"DLI2"  # DLI2 records carry a column-family tag; DLI1 (items only) still reads
_SNAPSHOT_V1 = b"DLI1"
MAX_REPLICA_CHANGES = 10_000
_LEN = struct.Struct(">I")
_U64 = struct.Struct(">Q")
RecordListener = Callable[[str, set[str]], None]  # (group, ids of tables with new records)
_FAMILIES = (ITEMS_CF, VERSIONS_CF, STREAMS_CF)  # a snapshot record's tag is the index here


def encode_command(op: str, body: Mapping[str, Any], now_ms: int = 0) -> bytes:
    """The log entry for an Execute write `op` with parsed `body`, stamped with the leader's
    wall clock (`now_ms`: the time of its change records, the wall part of its HLC stamps)."""
    if op not in WRITE_OPS:
        raise ValueError(f"not an item command: {op}")
    return orjson.dumps({**body, "op": op, "now_ms": now_ms})


def encode_command_raw(op: str, raw: bytes, body: Mapping[str, Any], now_ms: int = 0) -> bytes:
    """`encode_command(op, body, now_ms)` for a body that arrived as the JSON bytes `raw`
    (`body` = its parse, a JSON object): the raw bytes with "op" and "now_ms" spliced in before
    the closing brace, instead of serializing the whole item again. Decodes to the same command:
    a JSON object's later member wins (orjson keeps the last of duplicate names), as in
    {**body, "op": op, "now_ms": now_ms}."""
    if op not in WRITE_OPS:
        raise ValueError(f"not an item command: {op}")
    raw = raw.rstrip()
    if not body or not raw.endswith(b"}"):
        return encode_command(op, body, now_ms)
    return b"%s,\"op\":\"%s\",\"now_ms\":%d}" % (raw[:-1], op.encode(), now_ms)


@dataclass(frozen=True, slots=True)
class _Change:
    """One staged change in a column family: put `value` under `key` (None: delete), or delete
    `ranges`."""

    family: str
    key: bytes = b""
    value: bytes | None = None
    ranges: tuple[KeyRange, ...] = ()


class _View:
    """Items and versions as of the entries staged so far in one apply call (the WriteBatch is
    unreadable)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._keys: dict[tuple[str, bytes], bytes | None] = {}
        self._dropped: list[tuple[str, KeyRange]] = []

    def get(self, key: bytes) -> bytes | None:
        return self._read(ITEMS_CF, key)

    def get_version(self, key: bytes) -> bytes | None:
        return self._read(VERSIONS_CF, key)

    def _read(self, family: str, key: bytes) -> bytes | None:
        if (family, key) in self._keys:
            return self._keys[(family, key)]
        if any(f == family and key in r for f, r in self._dropped):
            return None
        return self._below(family, key)

    def _below(self, family: str, key: bytes) -> bytes | None:
        return self._db.get_item(key) if family == ITEMS_CF else self._db.get_version(key)

    def take(self, change: _Change) -> None:
        if change.ranges:
            self._dropped.extend((change.family, r) for r in change.ranges)
            for family, key in [fk for fk in self._keys if fk[0] == change.family
                                and any(fk[1] in r for r in change.ranges)]:
                self._keys[(family, key)] = None
        else:
            self._keys[(change.family, change.key)] = change.value


class _Staged(_View):
    """One entry's changes over the call's view: all of them or none (a failed BatchWrite)."""

    def __init__(self, db: StateDB, base: _View) -> None:
        super().__init__(db)
        self._base = base
        self.changes: list[_Change] = []

    def _below(self, family: str, key: bytes) -> bytes | None:
        return self._base._read(family, key)

    def put(self, family: str, key: bytes, value: bytes | None) -> None:
        self.stage(_Change(family, key, value))

    def stage(self, change: _Change) -> None:
        self.changes.append(change)
        self.take(change)


class _EntryContext:
    """What applying one entry needs besides the command: where its records go and their
    positions (one entry may make several records)."""

    def __init__(self, group: str, index: int, now_ms: int, staged: _Staged,
                 recorded: set[str]) -> None:
        self.group = group
        self.index = index
        self.now_ms = now_ms
        self.staged = staged
        # The tables with a record in this apply call (shared by its entries; one that fails
        # after recording leaves its table here: a wake-up for nothing, which waiters re-check).
        self.recorded = recorded
        self._records = 0

    def record(self, table: str, keys: Item, old: bytes | None, new: bytes | None,
               version: Version) -> None:
        """Stage the change record of one item change (images as stored JSON bytes)."""
        seq = streams.seq_number(self.index, self._records)
        self._records += 1
        self.recorded.add(table)
        self.staged.put(STREAMS_CF, streams.record_key(table, self.group, seq),
                        streams.encode_record(seq, keys, old, new, self.now_ms, version))


class ItemMachine:
    """StateMachine for the partition groups of one node (the `partitions` it hosts) in
    `region` (the origin of its local writes' change records and versions)."""

    def __init__(self, db: StateDB, partitions: Mapping[str, Partition],
                 region: str = "local") -> None:
        self._db = db
        self._partitions = dict(partitions)
        self._region = region
        self._handles = {ITEMS_CF: db.items_h, VERSIONS_CF: db.versions_h,
                         STREAMS_CF: db.streams_h}
        self.streams = StreamStore(db)
        self._record_listeners: Listeners[[str, set[str]]] = Listeners(
            "change-record listener")

    def on_records(self, listener: RecordListener) -> None:
        """Call `listener(group, table ids)` after an apply call wrote change records of those
        tables' shards in `group` (from the driver's turn: it must only note them). Applies that
        make no record call nothing."""
        self._record_listeners.add(listener)

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

    def _all_ranges(self, group: str, extra_tables: Sequence[str] = (),
                    family: str = ITEMS_CF) -> list[KeyRange]:
        tables = sorted(set(self._db.table_ids(family)) | set(extra_tables))
        if family == STREAMS_CF:
            return [streams.shard_range(table, group) for table in tables]
        return [r for table in tables for r in self.ranges(group, table)]

    # -- StateMachine

    def apply(self, group: str, entries: Sequence[Entry]) -> list[object]:
        applied = self._db.applied(group)
        view = _View(self._db)
        wb = self._db.batch()
        results: list[object] = []
        recorded: set[str] = set()
        last = applied
        for entry in entries:
            if entry.index <= applied:  # applied before a restart: its result went out then
                results.append(None)
                continue
            results.append(self._apply_entry(group, entry, view, wb, recorded))
            last = entry.index
        if last > applied:
            self._db.stage_applied(wb, group, last)
            self._db.write(wb)
        if recorded:
            self._record_listeners.tell(group, recorded)
        return results

    def snapshot(self, group: str) -> bytes:
        """Items, versions and change records of the group (DLI2): a replica restored from it
        serves the same items and the same shards as the leader that made it."""
        parts = [SNAPSHOT_MAGIC, _U64.pack(self._db.applied(group))]

        def adder(tag: int) -> Visit:
            head = bytes([tag])

            def add(key: bytes, value: bytes) -> bool:
                parts.extend((head, _LEN.pack(len(key)), key, _LEN.pack(len(value)), value))
                return True
            return add
        scans = {ITEMS_CF: self._db.scan, VERSIONS_CF: self._db.scan_versions,
                 STREAMS_CF: self._db.scan_records}
        for tag, family in enumerate(_FAMILIES):
            for key_range in self._all_ranges(group, family=family):
                scans[family](key_range, adder(tag))
        return b"".join(parts)

    def restore(self, group: str, snapshot: Snapshot) -> None:
        index = snapshot.meta.index
        if self._db.applied(group) >= index:
            # Our own state is already past it (add_group after a restart): the entries in
            # between are committed, so they are what we applied; nothing to replace.
            return
        records = _decode_snapshot(snapshot.data)
        tables = sorted({k[:layout.TABLE_ID_BYTES].hex() for _, k, _ in records})
        wb = self._db.batch()
        for family in _FAMILIES:
            for key_range in self._all_ranges(group, tables, family):
                wb.delete_range(key_range.low, key_range.high, self._handles[family])
        for family, key, value in records:
            if not self._snapshot_key_ok(group, family, key):
                raise ValueError(f"snapshot of {group} holds a key outside its range")
            wb.put(key, value, self._handles[family])
        self._db.stage_applied(wb, group, index)
        self._db.write(wb)
        log.info("group %s: restored %d keys from the snapshot at %d", group, len(records), index)

    def _snapshot_key_ok(self, group: str, family: str, key: bytes) -> bool:
        if family == STREAMS_CF:
            return len(key) > layout.TABLE_ID_BYTES and streams.shard_of(key)[1] == group
        return self.owns(group, key)

    # -- reads (served from the applied state)

    def applied(self, group: str) -> int:
        return self._db.applied(group)

    def get(self, key: bytes) -> bytes | None:
        """The stored item (orjson bytes) under a storage key."""
        return self._db.get_item(key)

    def version(self, key: bytes) -> Version | None:
        """The hidden (ts, origin) of a global table's item or tombstone (None: none kept)."""
        return _version(self._db.get_version(key))

    def scan(self, key_range: KeyRange, visit: Visit, reverse: bool = False) -> None:
        self._db.scan(key_range, visit, reverse)

    def digest(self, group: str) -> str:
        """sha256 over the group's items, then its versions, in key order (for comparing
        replicas). Change records are left out: each replica trims them on its own clock."""
        h = hashlib.sha256()

        def add(key: bytes, value: bytes) -> bool:
            h.update(_LEN.pack(len(key)) + key + _LEN.pack(len(value)) + value)
            return True
        for key_range in self._all_ranges(group):
            self._db.scan(key_range, add)
        for key_range in self._all_ranges(group, family=VERSIONS_CF):
            self._db.scan_versions(key_range, add)
        return h.hexdigest()

    def streams_digest(self, group: str) -> str:
        """sha256 over the group's change records in key order (admin: comparing replicas'
        shards when nothing has been trimmed)."""
        h = hashlib.sha256()

        def add(key: bytes, value: bytes) -> bool:
            h.update(_LEN.pack(len(key)) + key + _LEN.pack(len(value)) + value)
            return True
        for key_range in self._all_ranges(group, family=STREAMS_CF):
            self._db.scan_records(key_range, add)
        return h.hexdigest()

    # -- applying one entry

    def _apply_entry(self, group: str, entry: Entry, view: _View, wb: WriteBatch,
                     recorded: set[str]) -> object:
        staged = _Staged(self._db, view)
        try:
            command = orjson.loads(entry.data)
            if not isinstance(command, dict):
                raise ValidationException("malformed command")
            now_ms = command.get("now_ms") or 0  # entries from before stamping: time 0
            if isinstance(now_ms, bool) or not isinstance(now_ms, int) or now_ms < 0:
                raise ValidationException("now_ms must be a non-negative integer")
            result = self._run(command, _EntryContext(group, entry.index, now_ms, staged,
                                                       recorded))
        except DynalabError as exc:  # the client's (or a router's) fault: a result, not a crash
            return exc
        except Exception as exc:  # deterministic on every replica, so still only a result
            log.exception("group %s: entry %d failed", group, entry.index)
            return ServerError(f"applying entry {entry.index} failed: {exc!r}")
        for change in staged.changes:
            view.take(change)
            handle = self._handles[change.family]
            if change.ranges:
                for key_range in change.ranges:
                    if key_range.low < key_range.high:
                        wb.delete_range(key_range.low, key_range.high, handle)
            elif change.value is None:
                wb.delete(change.key, handle)
            else:
                wb.put(change.key, change.value, handle)
        return result

    def _run(self, command: dict[str, Any], ctx: _EntryContext) -> object:
        op = command.get("op")
        if op == "Write":
            return self._write(command, ctx)
        if op == "BatchWrite":
            batch = command.get("writes")
            if not isinstance(batch, list):
                raise ValidationException("BatchWrite needs a list of writes")
            for one in batch:
                self._write(one, ctx)
            return {}
        if op == "DropTable":
            self._drop(table_id(command), ctx)
            return {}
        if op == "ReplicaApply":
            return self._replica_apply(command, ctx)
        raise ValidationException(f"unknown command {op!r}")

    def check_write(self, group: str, command: Any) -> tuple[writes.PreparedWrite, bytes]:
        """The write and its storage key, if `command` is a well-formed write of this group's
        range; else ValidationException. The leader checks before proposing, apply again."""
        if not isinstance(command, dict) or not isinstance(command.get("write"), dict):
            raise ValidationException("a write needs a table and a write")
        try:
            # = writes.decode(orjson.dumps(command["write"])) without the JSON round trip of the
            # whole item (twice per write on a leader, once on a follower; performance.md).
            raw = command["write"]
            prepared = writes.PreparedWrite(raw["op"], KeySchema(*raw["schema"]), raw["key"],
                                            raw["req"])
            key = layout.item_key(table_id(command), prepared.key, prepared.schema)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValidationException(f"malformed write: {exc!r}") from None
        if not self.owns(group, key):
            raise ValidationException(f"the key does not belong to partition {group}")
        return prepared, key

    def _write(self, command: Any, ctx: _EntryContext) -> dict[str, Any]:
        prepared, key = self.check_write(ctx.group, command)
        if _blind_put(prepared, command):
            # Nothing in the outcome depends on the stored item (no condition, no old image
            # asked for, no change record): skip reading it. Storing the same item again is
            # the only difference, and nobody can see it.
            raw = None
        else:
            raw = ctx.staged.get(key)
        old: Item | None = orjson.loads(raw) if raw is not None else None
        outcome = writes.apply(prepared, old)
        if outcome.changed:
            new = None if outcome.item is None else orjson.dumps(outcome.item)
            ctx.staged.put(ITEMS_CF, key, new)
            if command.get("global") is True or command.get("stream"):
                self._bookkeep(command, ctx, key, prepared.key, raw, new)
        return {"Attributes": outcome.attributes} if outcome.attributes else {}

    def _bookkeep(self, command: dict[str, Any], ctx: _EntryContext, key: bytes, keys: Item,
                  old: bytes | None, new: bytes | None) -> None:
        """The change record of a local write and, for a global table, the item's new version:
        past the stored one, so a write that follows another of the item always wins."""
        ts = Timestamp(ctx.now_ms, 0)
        if command.get("global") is True:
            stored = _version(ctx.staged.get_version(key))
            ts = write_timestamp(ctx.now_ms, stored.ts if stored is not None else None)
        version = Version(ts, self._region)
        if command.get("global") is True:
            ctx.staged.put(VERSIONS_CF, key, _encode_version(version))
        ctx.record(table_id(command), keys, old, new, version)

    def _drop(self, table: str, ctx: _EntryContext) -> None:
        ranges = tuple(self.ranges(ctx.group, table))
        ctx.staged.stage(_Change(ITEMS_CF, ranges=ranges))
        ctx.staged.stage(_Change(VERSIONS_CF, ranges=ranges))
        ctx.staged.stage(_Change(STREAMS_CF, ranges=(streams.shard_range(table, ctx.group),)))

    def check_replica_apply(self, group: str, command: Any) -> list[tuple[bytes, _Replicated]]:
        """The changes of a ReplicaApply with their storage keys, if well-formed and all of this
        group's range; else ValidationException."""
        if not isinstance(command, dict):
            raise ValidationException("malformed ReplicaApply")
        table = table_id(command)
        names = _key_names(command.get("key_schema"))
        changes = command.get("changes")
        if not isinstance(changes, list) or not 0 < len(changes) <= MAX_REPLICA_CHANGES:
            raise ValidationException(
                f"ReplicaApply needs a list of 1 to {MAX_REPLICA_CHANGES} changes")
        out = []
        for change in changes:
            replicated = _replicated(change, names)
            key = layout.item_key(table, replicated.keys, replicated.schema)
            if not self.owns(group, key):
                raise ValidationException(f"the key does not belong to partition {group}")
            out.append((key, replicated))
        return out

    def _replica_apply(self, command: dict[str, Any], ctx: _EntryContext) -> dict[str, int]:
        """Last writer wins: a change applies iff its (ts, origin) is greater than the stored
        one (tombstones included); equal is skipped, so a repeated batch changes nothing."""
        table = table_id(command)
        applied = skipped = 0
        for key, change in self.check_replica_apply(ctx.group, command):
            if not wins(change.version, _version(ctx.staged.get_version(key))):
                skipped += 1
                continue
            applied += 1
            # The version moves even when the item does not, so every region holds the same one.
            ctx.staged.put(VERSIONS_CF, key, _encode_version(change.version))
            raw = ctx.staged.get(key)
            old: Item | None = orjson.loads(raw) if raw is not None else None
            if change.item != old:
                new = None if change.item is None else orjson.dumps(change.item)
                ctx.staged.put(ITEMS_CF, key, new)
                ctx.record(table, change.keys, raw, new, change.version)
        return {"applied": applied, "skipped": skipped}


def _blind_put(prepared: writes.PreparedWrite, command: Mapping[str, Any]) -> bool:
    """A PutItem whose outcome does not depend on the stored item: no condition, ReturnValues
    NONE, and a table with neither a stream nor global bookkeeping (whose records need the old
    image and whose version needs the stored one)."""
    if prepared.operation != "PutItem":
        return False
    request = prepared.request
    return (request.get("ConditionExpression") is None and request.get("Expected") is None
            and request.get("ReturnValues", "NONE") == "NONE"
            and not command.get("stream") and command.get("global") is not True)


@dataclass(frozen=True, slots=True)
class _Replicated:
    """One ReplicaApply change, checked."""

    keys: Item
    schema: KeySchema
    item: Item | None
    version: Version


def _key_names(raw: Any) -> tuple[str, str | None]:
    """(hash name, range name) from a catalog entry's key_schema."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
        raise ValidationException("ReplicaApply needs the table's key_schema")
    parts = {k.get("KeyType"): k.get("AttributeName") for k in raw if isinstance(k, dict)}
    hash_name, range_name = parts.get("HASH"), parts.get("RANGE")
    if not isinstance(hash_name, str) or (len(raw) == 2 and not isinstance(range_name, str)):
        raise ValidationException("malformed key_schema")
    return hash_name, range_name


def _replicated(change: Any, names: tuple[str, str | None]) -> _Replicated:
    if not isinstance(change, dict) or not isinstance(change.get("keys"), dict):
        raise ValidationException("a replicated change needs keys")
    keys: dict[str, Any] = change["keys"]
    hash_name, range_name = names
    schema = KeySchema(hash_name, _key_type(keys.get(hash_name)), range_name,
                       _key_type(keys.get(range_name)) if range_name is not None else None)
    parsed = validate_key(keys, schema)
    item = change.get("item")
    if item is not None and (not isinstance(item, dict)
                             or any(item.get(name) != value for name, value in parsed.items())):
        raise ValidationException("a replicated item must hold its keys")
    try:
        version = Version.from_wire(change)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationException(f"a replicated change needs ts and origin: {exc}") from None
    return _Replicated(parsed, schema, item, version)


def _key_type(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        (type_name,) = value
        if type_name in KEY_TYPES:
            return str(type_name)
    raise ValidationException("The provided key element does not match the schema")


def _version(raw: bytes | None) -> Version | None:
    if raw is None:
        return None
    wall_ms, logical, origin = orjson.loads(raw)
    return Version(Timestamp(wall_ms, logical), origin)


def _encode_version(version: Version) -> bytes:
    return orjson.dumps([version.ts.wall_ms, version.ts.logical, version.region])


def table_id(command: Mapping[str, Any]) -> str:
    """The table id a command or request body names, checked (docs/cluster.md)."""
    table = command.get("table")
    if not isinstance(table, str):
        raise ValidationException("a table id is required")
    try:
        layout.table_prefix(table)
    except ValueError as exc:
        raise ValidationException(str(exc)) from None
    return table


def _decode_snapshot(data: bytes) -> list[tuple[str, bytes, bytes]]:
    """(column family, key, value) of every record of a DLI2 (or items-only DLI1) snapshot."""
    tagged = data.startswith(SNAPSHOT_MAGIC)
    if not tagged and not data.startswith(_SNAPSHOT_V1):
        raise ValueError("not an item snapshot")
    pos = len(SNAPSHOT_MAGIC) + _U64.size
    records: list[tuple[str, bytes, bytes]] = []
    while pos < len(data):  # every record moves pos forward, so this ends
        family = ITEMS_CF
        if tagged:
            family = _FAMILIES[data[pos]]
            pos += 1
        (klen,) = _LEN.unpack_from(data, pos)
        key = data[pos + 4:pos + 4 + klen]
        pos += 4 + klen
        (vlen,) = _LEN.unpack_from(data, pos)
        records.append((family, key, data[pos + 4:pos + 4 + vlen]))
        pos += 4 + vlen
    return records
