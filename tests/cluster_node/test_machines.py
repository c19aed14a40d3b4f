"""The item and meta state machines on a real RocksDB, without processes: idempotent apply by
index, results instead of exceptions, one partition's snapshot/restore/drop touching exactly its
ranges, and the catalog's rules."""
from __future__ import annotations

from typing import Any

import orjson

from dynalab import layout, writes
from dynalab.errors import (ConditionalCheckFailedException, ResourceInUseException,
                            ResourceNotFoundException, ValidationException)
from dynalab.ring import Partition
from dynalab.values import Item, KeySchema
from node.items import ItemMachine, encode_command, encode_command_raw
from node.meta import META_GROUP, MetaMachine, stamp_command
from node.statedb import StateDB
from tests.statedb_fixture import db  # noqa: F401  (fixture)
from replication.types import Entry, Snapshot, SnapshotMeta

SCHEMA = KeySchema("pk", "S")
TABLE, OTHER = "00000000000000aa", "00000000000000bb"
HALF = 1 << 63
# Two groups splitting the ring: (HALF, 0] wraps past the top of the ring.
PARTS = {"low": Partition("low", 0, HALF, ("n1",)), "high": Partition("high", HALF, 0, ("n1",))}


def put(pk: str, table: str = TABLE, **request: Any) -> dict[str, Any]:
    prepared = writes.prepare("PutItem", {"Item": {"pk": {"S": pk}, "v": {"S": pk}}, **request},
                              SCHEMA)
    return {"table": table, "write": orjson.loads(writes.encode(prepared))}


def group_of(pk: str) -> str:
    token = layout.item_token({"pk": {"S": pk}}, SCHEMA)
    return "low" if PARTS["low"].contains(token) else "high"


def keys_for(group: str, count: int) -> list[str]:
    return [pk for pk in (f"k{i}" for i in range(1000)) if group_of(pk) == group][:count]


def entry(index: int, op: str, body: dict[str, Any]) -> Entry:
    return Entry(term=1, index=index, data=encode_command(op, body))


def stored(db: StateDB, pk: str, table: str = TABLE) -> Item | None:
    raw = db.get_item(layout.item_key(table, {"pk": {"S": pk}}, SCHEMA))
    return orjson.loads(raw) if raw is not None else None


def test_apply_is_idempotent_by_index_and_answers_failures_as_results(db: StateDB) -> None:
    machine = ItemMachine(db, PARTS)
    a, b = keys_for("low", 2)
    conditional = put(a, ConditionExpression="attribute_not_exists(pk)",
                      ReturnValuesOnConditionCheckFailure="ALL_OLD")
    results = machine.apply("low", [entry(2, "Write", put(a)), entry(3, "Write", conditional),
                                    entry(4, "Write", put(b, ReturnValues="ALL_OLD"))])
    assert results[0] == {} and results[2] == {}
    assert isinstance(results[1], ConditionalCheckFailedException)
    assert results[1].item == {"pk": {"S": a}, "v": {"S": a}}
    assert machine.applied("low") == 4 and machine.applied("high") == 0

    # A restart replays the log: what is at or below the applied index is skipped.
    again = ItemMachine(db, PARTS)
    digest = again.digest("low")
    replay = again.apply("low", [entry(3, "Write", put(b, ReturnValues="ALL_OLD")),
                                 entry(4, "Write", put(b, ReturnValues="ALL_OLD")),
                                 entry(5, "Write", put(b, ReturnValues="ALL_OLD"))])
    assert replay[:2] == [None, None]
    assert replay[2] == {"Attributes": {"pk": {"S": b}, "v": {"S": b}}}
    assert again.applied("low") == 5 and again.digest("low") == digest  # same item rewritten


def test_a_key_of_another_partition_is_refused(db: StateDB) -> None:
    machine = ItemMachine(db, PARTS)
    (foreign,) = keys_for("high", 1)
    (result,) = machine.apply("low", [entry(2, "Write", put(foreign))])
    assert isinstance(result, ValidationException)
    assert stored(db, foreign) is None and machine.applied("low") == 2


def test_batch_write_is_all_or_nothing_and_drop_table_sees_earlier_entries(db: StateDB) -> None:
    machine = ItemMachine(db, PARTS)
    a, b, c = keys_for("low", 3)
    (foreign,) = keys_for("high", 1)
    batch = {"writes": [put(a), put(foreign)]}  # the second write fails: nothing is stored
    results = machine.apply("low", [entry(2, "BatchWrite", batch),
                                    entry(3, "BatchWrite", {"writes": [put(b), put(b, OTHER)]}),
                                    entry(4, "DropTable", {"table": TABLE}),
                                    entry(5, "Write", put(c))])
    assert isinstance(results[0], ValidationException) and results[1:] == [{}, {}, {}]
    assert stored(db, a) is None and stored(db, b) is None  # b dropped in the same batch
    assert stored(db, c) is not None and stored(db, b, OTHER) is not None


def test_snapshot_and_restore_replace_exactly_the_groups_ranges(db: StateDB) -> None:
    machine = ItemMachine(db, PARTS)
    low, high = keys_for("low", 4), keys_for("high", 3)
    machine.apply("low", [entry(i + 2, "Write", put(pk, table)) for i, (pk, table) in
                          enumerate([(low[0], TABLE), (low[1], TABLE), (low[2], OTHER)])])
    machine.apply("high", [entry(i + 2, "Write", put(pk)) for i, pk in enumerate(high)])
    snap = machine.snapshot("low")
    high_digest = machine.digest("high")
    low_digest = machine.digest("low")

    machine.apply("low", [entry(5, "Write", put(low[3])), entry(6, "DropTable", {"table": OTHER})])
    assert machine.digest("low") != low_digest
    # A leader's snapshot (index past ours) brings the group back to exactly that state ...
    machine.restore("low", Snapshot(SnapshotMeta(index=10, term=2), snap))
    assert machine.digest("low") == low_digest and machine.applied("low") == 10
    assert stored(db, low[3]) is None and stored(db, low[2], OTHER) is not None
    assert machine.digest("high") == high_digest  # ... and leaves the other group alone
    # An older snapshot (add_group after a restart, state already past it) changes nothing.
    machine.restore("low", Snapshot(SnapshotMeta(index=7, term=1), b"DLI1" + bytes(8)))
    assert machine.digest("low") == low_digest


def test_puts_that_need_no_stored_item_give_the_same_answers_without_reading_it(
        db: StateDB) -> None:
    # A plain PutItem (no condition, ReturnValues NONE, no stream) skips reading the stored item;
    # every other write still reads it. Both kinds must answer exactly as writes.apply says.
    machine = ItemMachine(db, PARTS)
    a, b = keys_for("low", 2)
    reads: list[bytes] = []
    real_get = db.get_item

    def counting_get(key: bytes) -> bytes | None:
        reads.append(key)
        return real_get(key)
    db.get_item = counting_get  # type: ignore[method-assign]
    bodies = [put(a), put(a), put(a, ReturnValues="ALL_OLD"),
              put(a, ConditionExpression="attribute_exists(pk)"),
              put(b, ConditionExpression="attribute_exists(pk)"), put(b),
              {**put(b), "stream": "NEW_AND_OLD_IMAGES"}]
    results = [machine.apply("low", [entry(i + 2, "Write", body)])[0]  # one by one: no view
               for i, body in enumerate(bodies)]
    assert results[:3] == [{}, {}, {"Attributes": {"pk": {"S": a}, "v": {"S": a}}}]
    assert results[3] == {} and isinstance(results[4], ConditionalCheckFailedException)
    assert results[5:] == [{}, {}]
    # only the ALL_OLD put, the two conditional puts and the stream put read the stored item
    assert len(reads) == 4
    del db.get_item
    assert stored(db, a) == {"pk": {"S": a}, "v": {"S": a}}
    assert stored(db, b) == {"pk": {"S": b}, "v": {"S": b}}


def test_a_command_spliced_from_the_raw_body_decodes_like_encode_command() -> None:
    for raw in [orjson.dumps(put("x")), b' { "table" : "00000000000000aa" , "a": [1] }\n',
                b'{"op":"Nope","now_ms":3,"table":"t"}', b"{}", b"{ }"]:
        body = orjson.loads(raw)
        spliced = encode_command_raw("Write", raw, body, 77)
        assert orjson.loads(spliced) == orjson.loads(encode_command("Write", body, 77))


def test_put_items_share_one_compiled_request() -> None:
    writes._compile_cached.cache_clear()
    for pk in ("a", "b", "c"):
        prepared = writes.prepare("PutItem", {"Item": {"pk": {"S": pk}, "v": {"N": "1"}}}, SCHEMA)
        writes.apply(prepared, None)
    assert writes._compile_cached.cache_info().misses == 1


def test_the_applied_index_cache_follows_only_written_batches(db: StateDB) -> None:
    assert db.applied("g") == 0
    lost = db.batch()
    db.stage_applied(lost, "g", 5)  # staged, never written (its apply failed)
    kept = db.batch()
    db.stage_applied(kept, "g", 3)
    db.write(kept)
    assert db.applied("g") == 3
    db.write(db.batch())
    assert db.applied("g") == 3


def meta_entry(index: int, body: dict[str, Any]) -> Entry:
    return Entry(term=1, index=index, data=stamp_command(body, now_ms=1234))


def test_catalog_lifecycle(db: StateDB) -> None:
    meta = MetaMachine(db)
    definition = {"key_schema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                  "attribute_definitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
    r = meta.apply(META_GROUP, [
        meta_entry(2, {"op": "CreateTable", "name": "t", **definition}),
        meta_entry(3, {"op": "CreateTable", "name": "t", **definition}),
        meta_entry(4, {"op": "DeleteTable", "name": "t"}),
        meta_entry(5, {"op": "SetStatus", "name": "t", "status": "ACTIVE"}),
        meta_entry(6, {"op": "UpdateTable", "name": "t", "settings": {"ttl": "a"}}),
        meta_entry(7, {"op": "UpdateTable", "name": "t", "settings": {"pitr": True}}),
        meta_entry(8, {"op": "SetStatus", "name": "nope", "status": "ACTIVE"}),
    ])
    created = r[0]["table"]
    assert created["status"] == "CREATING" and created["created_ms"] == 1234
    assert len(created["id"]) == 16 and int(created["id"], 16) >= 0
    assert isinstance(r[1], ResourceInUseException)
    assert isinstance(r[2], ResourceInUseException)  # still CREATING
    assert isinstance(r[6], ResourceNotFoundException)
    catalog = meta.catalog()
    assert catalog["epoch"] == 4  # create, status, two updates
    assert catalog["tables"]["t"]["settings"] == {"ttl": "a", "pitr": True}

    snap = meta.snapshot(META_GROUP)
    r = meta.apply(META_GROUP, [meta_entry(9, {"op": "DeleteTable", "name": "t"}),
                                meta_entry(10, {"op": "SetStatus", "name": "t",
                                                "id": "0" * 16, "status": "DELETED"}),
                                meta_entry(11, {"op": "SetStatus", "name": "t",
                                                "id": created["id"], "status": "DELETED"})])
    assert r[0]["table"]["status"] == "DELETING"
    assert isinstance(r[1], ResourceNotFoundException)  # another incarnation's id
    assert r[2]["table"]["status"] == "DELETED" and meta.catalog()["tables"] == {}

    # The same name again gets another id (derived from the log index).
    (again,) = meta.apply(META_GROUP, [meta_entry(12, {"op": "CreateTable", "name": "t",
                                                       **definition})])
    assert again["table"]["id"] != created["id"]

    reopened = MetaMachine(db)  # persisted with its applied index
    assert reopened.catalog() == meta.catalog() and reopened.applied() == 12
    reopened.restore(META_GROUP, Snapshot(SnapshotMeta(index=20, term=3), snap))
    assert reopened.catalog()["tables"]["t"]["id"] == created["id"]
    assert MetaMachine(db).applied() == 20
