"""The node's hidden bookkeeping of global tables, on a real RocksDB without processes: LWW
ReplicaApply (greater wins, smaller and equal are skipped), tombstones that stop an older put from
resurrecting an item, the local-write rule (a write after a replicated one always wins, whatever
the stamped clock), and none of it ever visible in items, ReturnValues or stream images."""
from __future__ import annotations

from typing import Any

import orjson

from dynalab import layout, writes
from dynalab.errors import ValidationException
from dynalab.hlc import Timestamp, Version
from dynalab.ring import Partition
from dynalab.values import Item, KeySchema
from node.items import ItemMachine, encode_command
from node.statedb import StateDB
from tests.statedb_fixture import db  # noqa: F401  (fixture)
from replication.types import Entry

SCHEMA = KeySchema("pk", "S")
KEY_SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"}]
TABLE = "00000000000000aa"
GROUP = "all"
WHOLE_RING = {GROUP: Partition(GROUP, 0, 0, ("n1",))}  # (0, 0]: the whole ring
HERE, THERE = "us-east-1", "eu-west-1"


class Node:
    """One replica's item machine with a log-index counter, speaking in commands."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self.machine = ItemMachine(db, WHOLE_RING, HERE)
        self.index = 1

    def run(self, op: str, body: dict[str, Any], now_ms: int) -> object:
        self.index += 1
        entry = Entry(term=1, index=self.index, data=encode_command(op, body, now_ms))
        (result,) = self.machine.apply(GROUP, [entry])
        return result

    def put(self, pk: str, now_ms: int, value: str = "v", **request: Any) -> object:
        item = {"pk": {"S": pk}, "v": {"S": value}}
        return self.run("Write", _write("PutItem", {"Item": item, **request}), now_ms)

    def delete(self, pk: str, now_ms: int, **request: Any) -> object:
        return self.run("Write", _write("DeleteItem", {"Key": {"pk": {"S": pk}}, **request}),
                        now_ms)

    def replicate(self, *changes: dict[str, Any], now_ms: int = 1) -> object:
        return self.run("ReplicaApply", {"table": TABLE, "key_schema": KEY_SCHEMA,
                                         "changes": list(changes)}, now_ms)

    def item(self, pk: str) -> Item | None:
        raw = self.machine.get(_key(pk))
        return orjson.loads(raw) if raw is not None else None

    def version(self, pk: str) -> Version | None:
        return self.machine.version(_key(pk))

    def records(self) -> list[dict[str, Any]]:
        page = self.machine.streams.read(TABLE, GROUP, None, 10_000, 1 << 30)
        return [orjson.loads(r) for r in page.records]


def _write(operation: str, request: dict[str, Any], is_global: bool = True) -> dict[str, Any]:
    prepared = writes.prepare(operation, request, SCHEMA)
    return {"table": TABLE, "write": orjson.loads(writes.encode(prepared)),
            "stream": None, "global": is_global}


def _key(pk: str) -> bytes:
    return layout.item_key(TABLE, {"pk": {"S": pk}}, SCHEMA)


def change(pk: str, wall_ms: int, logical: int = 0, origin: str = THERE,
           value: str | None = "remote") -> dict[str, Any]:
    item = None if value is None else {"pk": {"S": pk}, "v": {"S": value}}
    return {"keys": {"pk": {"S": pk}}, "item": item, "ts": [wall_ms, logical], "origin": origin}


def test_replica_apply_greater_wins_smaller_is_skipped_equal_is_idempotent(db: StateDB) -> None:
    node = Node(db)
    assert node.replicate(change("a", 100, value="first")) == {"applied": 1, "skipped": 0}
    assert node.replicate(change("a", 200, value="newer")) == {"applied": 1, "skipped": 0}
    assert node.replicate(change("a", 150, value="older"),
                          change("a", 200, logical=0, origin="ap-south-1", value="tie-lower"),
                          ) == {"applied": 0, "skipped": 2}
    assert node.item("a") == {"pk": {"S": "a"}, "v": {"S": "newer"}}
    records_before = node.records()
    assert node.replicate(change("a", 200, value="newer")) == {"applied": 0, "skipped": 1}
    assert node.records() == records_before  # a repeated batch makes no record either
    # Same timestamp, greater region: the region breaks the tie, so every region agrees.
    assert node.replicate(change("a", 200, origin="us-west-2", value="tie-higher")) == \
        {"applied": 1, "skipped": 0}
    assert node.item("a") == {"pk": {"S": "a"}, "v": {"S": "tie-higher"}}
    assert node.version("a") == Version(Timestamp(200, 0), "us-west-2")
    events = [(r["event"], r["origin"], r["ts"]) for r in node.records()]
    assert events == [("INSERT", THERE, [100, 0]), ("MODIFY", THERE, [200, 0]),
                      ("MODIFY", "us-west-2", [200, 0])]


def test_a_tombstone_stops_an_older_put_from_resurrecting_the_item(db: StateDB) -> None:
    node = Node(db)
    node.put("t", now_ms=1_000)
    node.delete("t", now_ms=2_000)
    assert node.item("t") is None
    assert node.version("t") == Version(Timestamp(2_000, 0), HERE)  # the tombstone
    assert node.replicate(change("t", 1_500)) == {"applied": 0, "skipped": 1}
    assert node.item("t") is None
    # A replicated delete that is newer than the item leaves a tombstone too.
    node.put("u", now_ms=1_000)
    assert node.replicate(change("u", 3_000, value=None)) == {"applied": 1, "skipped": 0}
    assert node.replicate(change("u", 2_999)) == {"applied": 0, "skipped": 1}
    assert node.item("u") is None
    # A genuinely newer put brings the item back.
    assert node.replicate(change("t", 2_001, value="back")) == {"applied": 1, "skipped": 0}
    assert node.item("t") == {"pk": {"S": "t"}, "v": {"S": "back"}}


def test_a_local_write_after_a_replicated_one_wins_whatever_the_clock(db: StateDB) -> None:
    node = Node(db)
    far_future = 10**13
    node.replicate(change("c", far_future, logical=7))
    node.put("c", now_ms=5, value="local")  # this leader's clock is far behind
    version = node.version("c")
    assert version == Version(Timestamp(far_future, 8), HERE)
    assert node.item("c") == {"pk": {"S": "c"}, "v": {"S": "local"}}
    # Shipping the replicated change again cannot undo the local write that followed it.
    assert node.replicate(change("c", far_future, logical=7)) == {"applied": 0, "skipped": 1}
    # A delete that follows also wins, and its record carries the stamped ts.
    node.delete("c", now_ms=6)
    assert node.version("c") == Version(Timestamp(far_future, 9), HERE)
    last = node.records()[-1]
    assert (last["event"], last["ts"], last["origin"], last["time_ms"]) == \
        ("REMOVE", [far_future, 9], HERE, 6)
    # With a clock ahead of the stored stamp, the clock is taken as is.
    node.put("d", now_ms=50)
    node.put("d", now_ms=70, value="again")
    assert node.version("d") == Version(Timestamp(70, 0), HERE)


def test_the_bookkeeping_is_never_visible(db: StateDB) -> None:
    node = Node(db)
    node.replicate(change("b", 100))
    answer = node.put("b", now_ms=200, value="mine", ReturnValues="ALL_OLD")
    assert answer == {"Attributes": {"pk": {"S": "b"}, "v": {"S": "remote"}}}
    node.delete("b", now_ms=300)
    node.put("b", now_ms=400, value="back")
    user_keys = {"pk", "v"}
    for record in node.records():
        for image in (record["new"], record["old"]):
            assert image is None or set(image) == user_keys
        assert record["keys"] == {"pk": {"S": "b"}}
    stored: list[bytes] = []
    for key_range in node.machine.ranges(GROUP, TABLE):
        node.machine.scan(key_range, lambda key, value: stored.append(value) or True)
    assert [orjson.loads(v) for v in stored] == [{"pk": {"S": "b"}, "v": {"S": "back"}}]
    assert [r["event"] for r in node.records()] == ["INSERT", "MODIFY", "REMOVE", "INSERT"]


def test_plain_tables_keep_no_bookkeeping_and_writes_that_change_nothing_no_record(
        db: StateDB) -> None:
    node = Node(db)
    plain = {"Item": {"pk": {"S": "p"}, "v": {"S": "x"}}}
    node.run("Write", _write("PutItem", plain, is_global=False), now_ms=10)
    assert node.version("p") is None and node.records() == []
    streamed = {**_write("PutItem", plain, is_global=False), "stream": "KEYS_ONLY"}
    node.run("Write", streamed, now_ms=11)  # same item again: no change, no record
    node.run("Write", {**_write("DeleteItem", {"Key": {"pk": {"S": "nope"}}}, False),
                       "stream": "KEYS_ONLY"}, now_ms=12)
    assert node.records() == [] and node.version("p") is None
    failed = node.put("p", now_ms=13, ConditionExpression="attribute_not_exists(pk)")
    assert type(failed).__name__ == "ConditionalCheckFailedException"
    assert node.records() == [] and node.version("p") is None  # global, but nothing changed


def test_replica_apply_refuses_malformed_changes_whole(db: StateDB) -> None:
    node = Node(db)
    bad_item = {**change("x", 5), "item": {"pk": {"S": "other"}}}
    result = node.replicate(change("w", 5), bad_item)
    assert isinstance(result, ValidationException)
    assert node.item("w") is None and node.version("w") is None  # all or nothing
    no_origin = {k: v for k, v in change("w", 5).items() if k != "origin"}
    assert isinstance(node.replicate(no_origin), ValidationException)
    no_schema = node.run("ReplicaApply", {"table": TABLE, "changes": [change("w", 5)]}, 1)
    assert isinstance(no_schema, ValidationException)
