"""Change records on one node, without processes: seqs and positions, StreamRead paging,
trimming and the trim horizon, snapshots and DropTable carrying the shards, Range `with_meta`,
and StreamRead/Range through the Storage service's request handling."""
from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest

from dynalab import layout, writes
from dynalab.errors import TrimmedDataAccessException
from dynalab.layout import KeyRange
from dynalab.ring import Partition
from dynalab.topology import NodeSpec
from dynalab.values import KeySchema
from node import streams
from node.items import ItemMachine, encode_command
from node.machine import NodeMachine
from node.meta import MetaMachine
from node.service import StorageService
from node.statedb import StateDB
from tests.statedb_fixture import db  # noqa: F401  (fixture)
from proto import storage_pb2
from replication.types import Entry, Snapshot, SnapshotMeta

SCHEMA = KeySchema("pk", "S")
TABLE, OTHER = "00000000000000aa", "00000000000000bb"
HALF = 1 << 63
PARTS = {"low": Partition("low", 0, HALF, ("n1",)), "high": Partition("high", HALF, 0, ("n1",))}


def group_of(pk: str) -> str:
    token = layout.item_token({"pk": {"S": pk}}, SCHEMA)
    return "low" if PARTS["low"].contains(token) else "high"


def keys_for(group: str, count: int) -> list[str]:
    return [pk for pk in (f"k{i}" for i in range(1000)) if group_of(pk) == group][:count]


def put(pk: str, table: str = TABLE, value: str = "v", stream: str | None = "NEW_IMAGE",
        is_global: bool = False) -> dict[str, Any]:
    prepared = writes.prepare("PutItem", {"Item": {"pk": {"S": pk}, "v": {"S": value}}}, SCHEMA)
    return {"table": table, "write": orjson.loads(writes.encode(prepared)), "stream": stream,
            "global": is_global}


def entry(index: int, op: str, body: dict[str, Any], now_ms: int = 1_000) -> Entry:
    return Entry(term=1, index=index, data=encode_command(op, body, now_ms))


def read(machine: ItemMachine, group: str, after: int | None = None, limit: int = 1000,
         max_bytes: int = 1 << 30, table: str = TABLE) -> list[dict[str, Any]]:
    page = machine.streams.read(table, group, after, limit, max_bytes)
    return [orjson.loads(r) for r in page.records]


def test_seqs_are_21_digits_of_index_and_position() -> None:
    assert streams.format_seq(streams.seq_number(7, 3)) == "000000000000000700003"
    assert streams.parse_seq("000000000000000700003") == 700003
    for bad in ("-1", "12a", 5, None, "1" * 41):
        with pytest.raises(Exception):
            streams.parse_seq(bad)


def test_records_of_one_entry_get_positions_and_reads_page_in_seq_order(db: StateDB) -> None:
    machine = ItemMachine(db, PARTS, "us-east-1")
    a, b, c = keys_for("low", 3)
    machine.apply("low", [entry(2, "Write", put(a)),
                          entry(3, "BatchWrite", {"writes": [put(b), put(c), put(a, OTHER)]}),
                          entry(4, "Write", put(a, value="w2"), now_ms=2_000)])
    records = read(machine, "low")
    assert [(r["seq"], r["event"], r["keys"]["pk"]["S"]) for r in records] == [
        ("000000000000000200000", "INSERT", a), ("000000000000000300000", "INSERT", b),
        ("000000000000000300001", "INSERT", c), ("000000000000000400000", "MODIFY", a)]
    assert records[3]["old"] == {"pk": {"S": a}, "v": {"S": "v"}}
    assert records[3]["time_ms"] == 2_000 and records[3]["ts"] == [2_000, 0]
    assert records[3]["origin"] == "us-east-1"
    assert [r["seq"] for r in read(machine, "low", table=OTHER)] == ["000000000000000300002"]
    assert read(machine, "high") == []
    assert [r["seq"] for r in read(machine, "low", after=300000, limit=1)] == \
        ["000000000000000300001"]
    one_record = len(orjson.dumps(records[0]))
    assert len(read(machine, "low", max_bytes=one_record + 1)) == 2  # the crossing one included
    page = machine.streams.read(TABLE, "low", None, 0, 1 << 20)
    assert (page.records, page.trim_horizon, page.latest, page.trimmed) == \
        ((), 200000, 400000, None)


def test_trimming_removes_a_prefix_and_reading_before_it_is_refused(db: StateDB) -> None:
    machine = ItemMachine(db, PARTS)
    a, b, c = keys_for("low", 3)
    machine.apply("low", [entry(2, "Write", put(a), now_ms=100),
                          entry(3, "Write", put(b), now_ms=300),
                          entry(4, "Write", put(c), now_ms=200)])  # a later leader's slow clock
    assert machine.streams.trim("low", cutoff_ms=250) == 1  # stops at the first young record
    assert machine.streams.trim("low", cutoff_ms=250) == 0
    page = machine.streams.read(TABLE, "low", None, 10, 1 << 20)
    assert (page.trim_horizon, page.latest, page.trimmed) == (300000, 400000, 200000)
    with pytest.raises(TrimmedDataAccessException):
        machine.streams.read(TABLE, "low", 199999, 10, 1 << 20)
    assert [r["seq"] for r in read(machine, "low", after=200000)] == \
        ["000000000000000300000", "000000000000000400000"]
    assert machine.streams.trim("low", cutoff_ms=10_000) == 2
    empty = machine.streams.read(TABLE, "low", None, 10, 1 << 20)
    assert (empty.records, empty.trim_horizon, empty.latest, empty.trimmed) == \
        ((), None, None, 400000)


def test_snapshots_carry_records_and_versions_and_drop_table_removes_them(db: StateDB) -> None:
    machine = ItemMachine(db, PARTS, "us-east-1")
    a, b = keys_for("low", 2)
    (h,) = keys_for("high", 1)
    machine.apply("low", [entry(2, "Write", put(a, is_global=True)),
                          entry(3, "Write", put(b, stream=None))])
    machine.apply("high", [entry(2, "Write", put(h))])
    snap = machine.snapshot("low")
    low_records = read(machine, "low")
    version = machine.version(layout.item_key(TABLE, {"pk": {"S": a}}, SCHEMA))
    assert version is not None

    machine.apply("low", [entry(4, "DropTable", {"table": TABLE})])
    assert read(machine, "low") == [] and machine.streams.read(
        TABLE, "low", None, 1, 1).trimmed is None
    assert machine.version(layout.item_key(TABLE, {"pk": {"S": a}}, SCHEMA)) is None
    assert len(read(machine, "high")) == 1  # the other partition's shard is untouched

    fresh = ItemMachine(db, PARTS, "us-east-1")
    db_applied = fresh.applied("low")
    fresh.restore("low", Snapshot(SnapshotMeta(index=db_applied + 10), snap))
    assert read(fresh, "low") == low_records
    assert fresh.version(layout.item_key(TABLE, {"pk": {"S": a}}, SCHEMA)) == version
    assert len(read(fresh, "high")) == 1


def test_reverse_scans_stop_at_the_lower_bound(db: StateDB) -> None:
    # rocksdict's reverse iteration ignores iterate_lower_bound: StateDB must not.
    wb = db.batch()
    for key in (b"a1", b"a2", b"b1", b"b2", b"c1"):
        wb.put(key, b"{}", db.items_h)
    db.write(wb)
    seen: list[bytes] = []
    db.scan(KeyRange(b"b", b"c"), lambda key, value: seen.append(key) or True, reverse=True)
    assert seen == [b"b2", b"b1"]


class _Driver:
    """Just enough of RaftDriver for the read paths: this replica leads every group."""

    def is_leader(self, group: str) -> bool:
        return True

    def leader(self, group: str) -> str:
        return "n1"

    def on_leader_change(self, listener: object) -> None:
        return None


def test_stream_read_and_range_with_meta_through_the_service(db: StateDB) -> None:
    items = ItemMachine(db, PARTS, "us-east-1")
    a, b = keys_for("low", 2)
    items.apply("low", [entry(2, "Write", put(a, is_global=True), now_ms=77),
                        entry(3, "Write", put(b, stream=None))])
    service = StorageService(NodeSpec("n1", "us-east-1", "us-east-1a"), _Driver(),  # type: ignore[arg-type]
                             NodeMachine(items, MetaMachine(db)), frozenset(PARTS))

    def call(op: str, body: dict[str, Any]) -> storage_pb2.Response:
        request = storage_pb2.Request(request_id=1, operation=op, partition="low",
                                      body=orjson.dumps(body))
        return asyncio.run(service.handle(request))

    answer = orjson.loads(call("StreamRead", {"table": TABLE, "after": None, "limit": 5}).body)
    assert [r["keys"]["pk"]["S"] for r in answer["records"]] == [a]
    assert answer["trim_horizon"] == answer["latest"] == "000000000000000200000"
    assert answer["trimmed"] is None
    bad = call("StreamRead", {"table": TABLE, "after": "x"})
    assert bad.error_type == "ValidationException"

    (low_range,) = items.ranges("low", TABLE)
    bounds = {"table": TABLE, "low": base64.b64encode(low_range.low).decode(),
              "high": base64.b64encode(low_range.high).decode()}
    plain = orjson.loads(call("Range", bounds).body)["Items"]
    assert all(len(element) == 2 for element in plain)
    with_meta = orjson.loads(call("Range", {**bounds, "with_meta": True}).body)["Items"]
    metas = {element[1]["pk"]["S"]: element[2] for element in with_meta}
    assert metas == {a: {"ts": [77, 0], "origin": "us-east-1"}, b: None}


def test_record_listeners_hear_of_the_shards_that_got_records_only(db: StateDB) -> None:
    """What wakes held StreamReads: one call per apply that made records, naming its tables;
    applies that make none (writes of a table without a stream) call nothing."""
    items = ItemMachine(db, PARTS, "us-east-1")
    heard: list[tuple[str, set[str]]] = []
    items.on_records(lambda group, tables: heard.append((group, set(tables))))
    a, b = keys_for("low", 2)
    items.apply("low", [entry(2, "Write", put(a, stream=None))])
    assert heard == []
    items.apply("low", [entry(3, "Write", put(a, value="w")), entry(4, "Write", put(b, table=OTHER)),
                        entry(5, "Write", put(b, stream=None))])
    assert heard == [("low", {TABLE, OTHER})]
