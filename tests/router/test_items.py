"""PutItem, GetItem, UpdateItem, DeleteItem: validation, conditions, return values, routing."""
from __future__ import annotations

from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.router.conftest import AZS, Harness, create, raw_error

K = {"pk": {"S": "a"}, "sk": {"N": "1"}}


@pytest.fixture(scope="module")
def table(ddb: BaseClient) -> str:
    return create(ddb)


def caught(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response  # type: ignore[no-any-return]


def stored(harness: Harness, table: str) -> list[dict[str, Any]]:
    return harness.on_loop(lambda: harness.cluster.items_of(table))


def test_put_then_get(ddb: BaseClient, table: str) -> None:
    item = {**K, "n": {"N": "1.50"}, "l": {"L": [{"S": "x"}, {"NULL": True}]}}
    assert "Attributes" not in ddb.put_item(TableName=table, Item=item)
    got = ddb.get_item(TableName=table, Key=K)["Item"]
    assert got == {**item, "n": {"N": "1.5"}}  # numbers come back canonical


def test_get_missing_item_has_no_item_member(ddb: BaseClient, table: str) -> None:
    response = ddb.get_item(TableName=table, Key={"pk": {"S": "nothing"}, "sk": {"N": "0"}})
    assert "Item" not in response


def test_projection_expression_and_attributes_to_get(ddb: BaseClient, table: str) -> None:
    key = {"pk": {"S": "proj"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "a": {"M": {"b": {"S": "1"}, "c": {"S": "2"}}},
                                        "d": {"S": "3"}})
    got = ddb.get_item(TableName=table, Key=key, ProjectionExpression="#a.b, d",
                       ExpressionAttributeNames={"#a": "a"})["Item"]
    assert got == {"a": {"M": {"b": {"S": "1"}}}, "d": {"S": "3"}}
    legacy = ddb.get_item(TableName=table, Key=key, AttributesToGet=["d"])
    assert legacy["Item"] == {"d": {"S": "3"}}


def test_put_return_values_all_old(ddb: BaseClient, table: str) -> None:
    key = {"pk": {"S": "rv"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"S": "first"}})
    old = ddb.put_item(TableName=table, Item={**key, "v": {"S": "second"}}, ReturnValues="ALL_OLD")
    assert old["Attributes"] == {**key, "v": {"S": "first"}}


def test_condition_failure_returns_old_item_when_asked(ddb: BaseClient, table: str,
                                                       harness: Harness) -> None:
    key = {"pk": {"S": "ccf"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"N": "1"}})
    response = caught(ddb.put_item, TableName=table, Item={**key, "v": {"N": "2"}},
                      ConditionExpression="attribute_not_exists(pk)",
                      ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert response["Error"] == {"Code": "ConditionalCheckFailedException",
                                 "Message": "The conditional request failed"}
    assert response["Item"] == {**key, "v": {"N": "1"}}
    assert ddb.get_item(TableName=table, Key=key)["Item"]["v"] == {"N": "1"}


def test_update_item_with_condition_and_updated_new(ddb: BaseClient, table: str) -> None:
    key = {"pk": {"S": "upd"}, "sk": {"N": "1"}}
    first = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET c = :one",
                            ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
    assert first["Attributes"] == {**key, "c": {"N": "1"}}
    second = ddb.update_item(TableName=table, Key=key, UpdateExpression="ADD c :one",
                             ConditionExpression="c = :one",
                             ExpressionAttributeValues={":one": {"N": "1"}},
                             ReturnValues="UPDATED_NEW")
    assert second["Attributes"] == {"c": {"N": "2"}}
    response = caught(ddb.update_item, TableName=table, Key=key, UpdateExpression="ADD c :one",
                      ConditionExpression="c = :one",
                      ExpressionAttributeValues={":one": {"N": "1"}})
    assert response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert "Item" not in response


def test_legacy_attribute_updates_and_expected(ddb: BaseClient, table: str) -> None:
    key = {"pk": {"S": "legacy"}, "sk": {"N": "1"}}
    ddb.update_item(TableName=table, Key=key,
                    AttributeUpdates={"v": {"Action": "PUT", "Value": {"S": "x"}}},
                    Expected={"v": {"Exists": False}})
    assert ddb.get_item(TableName=table, Key=key)["Item"]["v"] == {"S": "x"}


def test_delete_item(ddb: BaseClient, table: str) -> None:
    key = {"pk": {"S": "del"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"S": "x"}})
    old = ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")
    assert old["Attributes"]["v"] == {"S": "x"}
    assert "Item" not in ddb.get_item(TableName=table, Key=key, ConsistentRead=True)


@pytest.mark.parametrize("operation, body, message", [
    ("PutItem", {"Item": {"pk": {"S": "a"}}},
     "One or more parameter values were invalid: Missing the key sk in the item"),
    ("PutItem", {"Item": {"pk": {"N": "1"}, "sk": {"N": "1"}}},
     "One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N"),
    ("GetItem", {"Key": {"pk": {"S": "a"}}}, "The provided key element does not match the schema"),
    ("DeleteItem", {"Key": {**K, "x": {"S": "1"}}},
     "The provided key element does not match the schema"),
    ("UpdateItem", {"Key": K, "UpdateExpression": "SET sk = :v",
                    "ExpressionAttributeValues": {":v": {"N": "2"}}},
     "One or more parameter values were invalid: Cannot update attribute sk. This attribute is "
     "part of the key"),
    ("PutItem", {"Item": K, "ReturnValues": "ALL_NEW"}, "ReturnValues can only be ALL_OLD or NONE"),
    ("PutItem", {"Item": K, "ReturnConsumedCapacity": "SOME"},
     "1 validation error detected: Value 'SOME' at 'returnConsumedCapacity' failed to satisfy "
     "constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"),
    ("GetItem", {}, "1 validation error detected: Value null at 'key' failed to satisfy "
                    "constraint: Member must not be null"),
])
def test_bad_input_is_refused_and_changes_nothing(harness: Harness, table: str, operation: str,
                                                  body: dict[str, Any], message: str) -> None:
    before = stored(harness, table)
    writes_before = len(harness.on_loop(lambda: harness.cluster.calls_of("Write")))
    assert raw_error(harness, operation, {"TableName": table, **body}) == (
        "ValidationException", message)
    assert stored(harness, table) == before
    assert len(harness.on_loop(lambda: harness.cluster.calls_of("Write"))) == writes_before


def test_consumed_capacity_total_and_indexes(ddb: BaseClient, table: str) -> None:
    key = {"pk": {"S": "cap"}, "sk": {"N": "1"}}
    big = {**key, "blob": {"S": "x" * 5000}}
    put = ddb.put_item(TableName=table, Item=big, ReturnConsumedCapacity="TOTAL")
    assert put["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 5.0}
    eventual = ddb.get_item(TableName=table, Key=key, ReturnConsumedCapacity="TOTAL")
    assert eventual["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 1.0}
    strong = ddb.get_item(TableName=table, Key=key, ConsistentRead=True,
                          ReturnConsumedCapacity="INDEXES")
    assert strong["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 2.0,
                                          "Table": {"CapacityUnits": 2.0}}
    assert "ConsumedCapacity" not in ddb.get_item(TableName=table, Key=key)


def test_writes_and_consistent_reads_go_to_the_leader(ddb: BaseClient, table: str,
                                                      harness: Harness) -> None:
    key = {"pk": {"S": "route"}, "sk": {"N": "1"}}
    start = harness.on_loop(lambda: len(harness.cluster.calls))
    ddb.put_item(TableName=table, Item=key)
    ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    # Leaving out the router's background catalog refreshes (Meta), which may come in between.
    calls = harness.on_loop(lambda: [c for c in harness.cluster.calls[start:]
                                     if c.operation != "Meta"])
    leaders = harness.on_loop(lambda: dict(harness.cluster.leaders))
    assert [c.operation for c in calls] == ["Write", "Get"]
    assert all(c.node == leaders[c.partition] for c in calls)


def test_eventually_consistent_reads_prefer_the_same_az(ddb: BaseClient, table: str,
                                                        harness: Harness) -> None:
    start = harness.on_loop(lambda: len(harness.cluster.calls_of("Get")))
    for i in range(10):
        ddb.get_item(TableName=table, Key={"pk": {"S": f"az{i}"}, "sk": {"N": "1"}})
    # Only the Gets: the router's background catalog refresh may call a node meanwhile.
    gets = harness.on_loop(lambda: harness.cluster.calls_of("Get")[start:])
    assert len(gets) == 10  # one node call per read, none retried
    assert {harness.topology.az_of(c.node) for c in gets} == {AZS[0]}


def test_eventually_consistent_read_falls_back_when_the_local_replica_is_down(
        ddb: BaseClient, table: str, harness: Harness) -> None:
    key = {"pk": {"S": "fallback"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"S": "here"}})
    partition = harness.router.routing.partition_for(key, harness.router.catalog.get(table).schema)
    local = next(n for n in partition.replicas if harness.topology.az_of(n) == AZS[0])
    harness.on_loop(lambda: harness.cluster.down_nodes.add(local))
    try:
        assert ddb.get_item(TableName=table, Key=key)["Item"]["v"] == {"S": "here"}
        last = harness.on_loop(lambda: harness.cluster.calls_of("Get")[-2:])
        assert [c.node == local for c in last] == [True, False]
    finally:
        harness.on_loop(lambda: harness.cluster.down_nodes.discard(local))


def test_partition_without_leader_answers_503_after_bounded_retries(
        ddb: BaseClient, table: str, harness: Harness) -> None:
    key = {"pk": {"S": "noleader"}, "sk": {"N": "1"}}
    partition = harness.router.routing.partition_for(key, harness.router.catalog.get(table).schema)
    harness.on_loop(lambda: harness.cluster.unavailable_groups.add(partition.id))
    start = harness.on_loop(lambda: len(harness.cluster.calls))
    try:
        response = caught(ddb.put_item, TableName=table, Item=key)
    finally:
        harness.on_loop(lambda: harness.cluster.unavailable_groups.discard(partition.id))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    attempts = harness.on_loop(lambda: [c for c in harness.cluster.calls[start:]
                                        if c.partition == partition.id])
    assert 2 <= len(attempts) <= harness.router.config.retry.max_attempts
    assert "Item" not in ddb.get_item(TableName=table, Key=key, ConsistentRead=True)


def test_not_leader_answer_is_followed_transparently(ddb: BaseClient, table: str,
                                                     harness: Harness) -> None:
    key = {"pk": {"S": "moved"}, "sk": {"N": "1"}}
    partition = harness.router.routing.partition_for(key, harness.router.catalog.get(table).schema)
    harness.on_loop(lambda: harness.cluster.not_leader_once.add(partition.id))
    start = harness.on_loop(lambda: len(harness.cluster.calls))
    ddb.put_item(TableName=table, Item={**key, "v": {"S": "ok"}})
    writes = harness.on_loop(lambda: [c for c in harness.cluster.calls[start:]
                                      if c.operation == "Write"])
    assert len(writes) == 2 and writes[0].node != writes[1].node
    assert writes[1].node == harness.router.routing.leader_of(partition)
    assert ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["v"] == {"S": "ok"}
