"""BatchGetItem and BatchWriteItem: limits, duplicates, per-partition grouping, partial failure."""
from __future__ import annotations

from typing import Any

import pytest
from botocore.client import BaseClient

from tests.router.conftest import Harness, create, raw_error


@pytest.fixture(scope="module")
def tables(ddb: BaseClient) -> tuple[str, str]:
    return create(ddb, range_key=None), create(ddb, range_key=None)


def keys(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"pk": {"S": f"{prefix}{i}"}} for i in range(count)]


def partitions_of(harness: Harness, table: str, items: list[dict[str, Any]]) -> set[str]:
    schema = harness.router.catalog.get(table).schema
    return {harness.router.routing.partition_for(item, schema).id for item in items}


def test_batch_write_groups_writes_into_one_batch_per_partition(
        ddb: BaseClient, harness: Harness, tables: tuple[str, str]) -> None:
    a, b = tables
    items_a, items_b = keys("w", 15), keys("w", 10)
    start = harness.on_loop(lambda: len(harness.cluster.calls))
    response = ddb.batch_write_item(RequestItems={
        a: [{"PutRequest": {"Item": {**k, "v": {"S": "a"}}}} for k in items_a],
        b: [{"PutRequest": {"Item": k}} for k in items_b]}, ReturnConsumedCapacity="TOTAL")
    assert response["UnprocessedItems"] == {}
    assert response["ConsumedCapacity"] == [{"TableName": a, "CapacityUnits": 15.0},
                                            {"TableName": b, "CapacityUnits": 10.0}]
    batches = harness.on_loop(lambda: [c for c in harness.cluster.calls[start:]
                                       if c.operation == "BatchWrite"])
    expected = partitions_of(harness, a, items_a) | partitions_of(harness, b, items_b)
    assert sorted(c.partition for c in batches) == sorted(expected)  # one proposal per partition
    assert sum(len(c.body["writes"]) for c in batches) == 25
    assert len(harness.on_loop(lambda: harness.cluster.items_of(a))) >= 15


def test_batch_write_deletes(ddb: BaseClient, tables: tuple[str, str]) -> None:
    a, _ = tables
    ddb.batch_write_item(RequestItems={a: [{"PutRequest": {"Item": k}} for k in keys("d", 3)]})
    ddb.batch_write_item(RequestItems={a: [{"DeleteRequest": {"Key": k}} for k in keys("d", 3)]})
    got = ddb.batch_get_item(RequestItems={a: {"Keys": keys("d", 3), "ConsistentRead": True}})
    assert got["Responses"] == {a: []}


def test_batch_write_reports_failed_partitions_as_unprocessed(
        ddb: BaseClient, harness: Harness, tables: tuple[str, str]) -> None:
    a, _ = tables
    items = keys("u", 20)
    down = sorted(partitions_of(harness, a, items))[0]
    harness.on_loop(lambda: harness.cluster.unavailable_groups.add(down))
    try:
        response = ddb.batch_write_item(RequestItems={
            a: [{"PutRequest": {"Item": k}} for k in items]})
    finally:
        harness.on_loop(lambda: harness.cluster.unavailable_groups.discard(down))
    schema = harness.router.catalog.get(a).schema
    expected = [k for k in items if harness.router.routing.partition_for(k, schema).id == down]
    assert response["UnprocessedItems"] == {a: [{"PutRequest": {"Item": k}} for k in expected]}
    got = ddb.batch_get_item(RequestItems={a: {"Keys": items}})["Responses"][a]
    assert len(got) == len(items) - len(expected)
    # Retrying the unprocessed items finishes the job.
    assert ddb.batch_write_item(RequestItems=response["UnprocessedItems"])["UnprocessedItems"] == {}


@pytest.mark.parametrize("request_items, message", [
    ({"A": 26}, "1 validation error detected: Value '{TABLE_A=[26 WriteRequests]}' at "
                "'requestItems' failed to satisfy constraint: Map value must satisfy constraint: "
                "[Member must have length less than or equal to 25, Member must have length "
                "greater than or equal to 1]"),
    ({"A": 13, "B": 13}, "Too many items requested for the BatchWriteItem call"),
    ({"dup": 2}, "Provided list of item keys contains duplicates"),
])
def test_batch_write_limits(harness: Harness, tables: tuple[str, str],
                            request_items: dict[str, int], message: str) -> None:
    names = dict(zip(("A", "B"), tables))
    if "dup" in request_items:
        body = {tables[0]: [{"PutRequest": {"Item": {"pk": {"S": "same"}}}}] * 2}
    else:
        body = {names[t]: [{"PutRequest": {"Item": k}} for k in keys(f"lim{t}", n)]
                for t, n in request_items.items()}
    before = harness.on_loop(lambda: len(harness.cluster.calls_of("BatchWrite")))
    assert raw_error(harness, "BatchWriteItem", {"RequestItems": body}) == (
        "ValidationException", message.replace("TABLE_A", tables[0]))
    assert harness.on_loop(lambda: len(harness.cluster.calls_of("BatchWrite"))) == before


def test_batch_write_refuses_a_request_with_both_or_neither(harness: Harness,
                                                            tables: tuple[str, str]) -> None:
    a, _ = tables
    code, _ = raw_error(harness, "BatchWriteItem", {"RequestItems": {a: [{}]}})
    assert code == "ValidationException"
    code, message = raw_error(harness, "BatchWriteItem", {"RequestItems": {
        a: [{"PutRequest": {"Item": {"pk": {"S": "ok"}}}},
            {"PutRequest": {"Item": {"x": {"S": "1"}}}}]}})
    assert message == "One or more parameter values were invalid: Missing the key pk in the item"
    assert not [i for i in harness.on_loop(lambda: harness.cluster.items_of(a))
                if i["pk"] == {"S": "ok"}]  # the valid half was not written either


def test_batch_get_across_tables_with_projection(ddb: BaseClient, tables: tuple[str, str]) -> None:
    a, b = tables
    ddb.batch_write_item(RequestItems={
        a: [{"PutRequest": {"Item": {**k, "x": {"S": "ax"}, "y": {"S": "ay"}}}}
            for k in keys("g", 5)],
        b: [{"PutRequest": {"Item": {**k, "x": {"S": "bx"}}}} for k in keys("g", 2)]})
    got = ddb.batch_get_item(RequestItems={
        a: {"Keys": keys("g", 5), "ProjectionExpression": "#x",
            "ExpressionAttributeNames": {"#x": "x"}},
        b: {"Keys": keys("g", 3), "ConsistentRead": True}}, ReturnConsumedCapacity="TOTAL")
    assert sorted(got["Responses"][a], key=str) == [{"x": {"S": "ax"}}] * 5
    assert sorted(i["pk"]["S"] for i in got["Responses"][b]) == ["g0", "g1"]
    assert got["UnprocessedKeys"] == {}
    assert got["ConsumedCapacity"] == [{"TableName": a, "CapacityUnits": 2.5},
                                       {"TableName": b, "CapacityUnits": 3.0}]


def test_batch_get_returns_unavailable_keys_as_unprocessed(
        ddb: BaseClient, harness: Harness, tables: tuple[str, str]) -> None:
    a, _ = tables
    items = keys("p", 12)
    ddb.batch_write_item(RequestItems={a: [{"PutRequest": {"Item": k}} for k in items]})
    schema = harness.router.catalog.get(a).schema
    down = harness.router.routing.partition_for(items[0], schema)
    harness.on_loop(lambda: harness.cluster.unavailable_groups.add(down.id))
    try:
        got = ddb.batch_get_item(RequestItems={a: {"Keys": items, "ConsistentRead": True}})
    finally:
        harness.on_loop(lambda: harness.cluster.unavailable_groups.discard(down.id))
    lost = [k for k in items if harness.router.routing.partition_for(k, schema).id == down.id]
    assert got["UnprocessedKeys"] == {a: {"Keys": lost, "ConsistentRead": True}}
    assert len(got["Responses"][a]) == len(items) - len(lost)


def test_batch_get_limits(harness: Harness, tables: tuple[str, str]) -> None:
    a, b = tables
    assert raw_error(harness, "BatchGetItem", {"RequestItems": {
        a: {"Keys": keys("l", 60)}, b: {"Keys": keys("l", 41)}}}) == (
        "ValidationException", "Too many items requested for the BatchGetItem call")
    assert raw_error(harness, "BatchGetItem", {"RequestItems": {
        a: {"Keys": [{"pk": {"S": "d"}}, {"pk": {"S": "d"}}]}}}) == (
        "ValidationException", "Provided list of item keys contains duplicates")
    missing = {"RequestItems": {"no-such": {"Keys": keys("l", 1)}}}
    assert raw_error(harness, "BatchGetItem", missing) == (
        "ResourceNotFoundException", "Requested resource not found")


def test_batch_get_stops_at_16_megabytes(ddb: BaseClient, harness: Harness) -> None:
    table = create(ddb, range_key=None)
    big = "z" * 390_000
    items = [{"pk": {"S": f"big{i}"}, "blob": {"S": big}} for i in range(50)]
    for i in range(0, 50, 10):  # 10 x 390 KB per request keeps each request small
        ddb.batch_write_item(RequestItems={
            table: [{"PutRequest": {"Item": it}} for it in items[i:i + 10]]})
    got = ddb.batch_get_item(RequestItems={table: {"Keys": [{"pk": it["pk"]} for it in items]}})
    returned = len(got["Responses"][table])
    unprocessed = len(got["UnprocessedKeys"][table]["Keys"])
    assert returned + unprocessed == 50
    assert 16 * 1024 * 1024 <= returned * 390_000 <= 16 * 1024 * 1024 + 400_000
