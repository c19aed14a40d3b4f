"""Every router operation through boto3 against a real cluster (3 nodes in 3 AZs, one router),
including the error paths: bad input gets DynamoDB's error type and changes nothing."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.cluster import Cluster, wait_active, wait_for

pytestmark = pytest.mark.cluster


def error_code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def ddb(cluster: Cluster) -> Any:
    return cluster.client()


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    name = f"orders-{uuid.uuid4().hex[:8]}"
    created = ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}])
    assert created["TableDescription"]["TableStatus"] == "CREATING"
    wait_active(ddb, name)
    return name


def test_tables_are_listed_described_and_unique(ddb: Any, table: str) -> None:
    described = ddb.describe_table(TableName=table)["Table"]
    assert described["KeySchema"][0] == {"AttributeName": "pk", "KeyType": "HASH"}
    assert described["TableArn"].endswith(f":table/{table}")
    assert table in ddb.list_tables()["TableNames"]
    with pytest.raises(ClientError) as info:
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    assert error_code(info) == "ResourceInUseException"
    with pytest.raises(ClientError) as info:
        ddb.describe_table(TableName="no-such-table")
    assert error_code(info) == "ResourceNotFoundException"


def test_put_get_update_delete(ddb: Any, table: str) -> None:
    key = {"pk": {"S": "crud"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "total": {"N": "10.50"}, "tags": {"SS": ["a"]}})
    got = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert got["total"] == {"N": "10.5"}
    updated = ddb.update_item(
        TableName=table, Key=key, UpdateExpression="SET #tot = #tot + :d ADD tags :t",
        ConditionExpression="attribute_exists(pk)", ReturnValues="UPDATED_NEW",
        ExpressionAttributeNames={"#tot": "total"},  # `total` is a reserved word
        ExpressionAttributeValues={":d": {"N": "0.5"}, ":t": {"SS": ["b"]}})
    assert updated["Attributes"]["total"] == {"N": "11"}
    assert sorted(updated["Attributes"]["tags"]["SS"]) == ["a", "b"]
    projected = ddb.get_item(TableName=table, Key=key, ConsistentRead=True,
                             ProjectionExpression="#t", ExpressionAttributeNames={"#t": "total"})
    assert projected["Item"] == {"total": {"N": "11"}}
    deleted = ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")
    assert deleted["Attributes"]["total"] == {"N": "11"}
    assert "Item" not in ddb.get_item(TableName=table, Key=key, ConsistentRead=True)


def test_eventually_consistent_read_converges(ddb: Any, table: str) -> None:
    key = {"pk": {"S": "eventual"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"S": "x"}})
    wait_for(lambda: ddb.get_item(TableName=table, Key=key).get("Item"), "eventual read", 10)


def test_failed_condition_changes_nothing(ddb: Any, table: str) -> None:
    key = {"pk": {"S": "cond"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"N": "1"}})
    with pytest.raises(ClientError) as info:
        ddb.put_item(TableName=table, Item={**key, "v": {"N": "2"}},
                     ConditionExpression="attribute_not_exists(pk)",
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert error_code(info) == "ConditionalCheckFailedException"
    assert info.value.response.get("Item", {}).get("v") == {"N": "1"}
    assert ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["v"] == {"N": "1"}


@pytest.mark.parametrize("bad_item", [
    {"pk": {"S": "bad"}},                                          # missing range key
    {"pk": {"S": "bad"}, "sk": {"S": "not-a-number-type"}},        # key type mismatch
    {"pk": {"S": "bad"}, "sk": {"N": "1"}, "s": {"SS": []}},       # empty set
    {"pk": {"S": "bad"}, "sk": {"N": "1"}, "n": {"N": "1e126"}},   # number overflow
])
def test_bad_items_are_refused_and_change_nothing(ddb: Any, table: str, bad_item: dict) -> None:
    with pytest.raises(ClientError) as info:
        ddb.put_item(TableName=table, Item=bad_item)
    assert error_code(info) == "ValidationException"
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "bad"}, "sk": {"N": "1"}},
                       ConsistentRead=True)
    assert "Item" not in got


def test_bad_expressions_are_validation_errors(ddb: Any, table: str) -> None:
    key = {"pk": {"S": "expr"}, "sk": {"N": "1"}}
    cases = [
        dict(UpdateExpression="SET name = :v", ExpressionAttributeValues={":v": {"S": "x"}}),
        dict(UpdateExpression="SET a = :v", ExpressionAttributeValues={":v": {"S": "x"},
                                                                       ":unused": {"S": "y"}}),
        dict(UpdateExpression="SET sk = :v", ExpressionAttributeValues={":v": {"N": "2"}}),
        dict(UpdateExpression="SET a = :undefined"),
    ]
    for case in cases:
        with pytest.raises(ClientError) as info:
            ddb.update_item(TableName=table, Key=key, **case)
        assert error_code(info) == "ValidationException", case
    assert "Item" not in ddb.get_item(TableName=table, Key=key, ConsistentRead=True)


def test_query_pages_orders_filters_and_counts(ddb: Any, table: str) -> None:
    requests = [{"PutRequest": {"Item": {"pk": {"S": "q"}, "sk": {"N": str(i)},
                                         "even": {"BOOL": i % 2 == 0}}}} for i in range(25)]
    assert not ddb.batch_write_item(RequestItems={table: requests}).get("UnprocessedItems")
    condition = dict(TableName=table, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                     ExpressionAttributeValues={":p": {"S": "q"}, ":a": {"N": "3"},
                                                ":b": {"N": "20"}}, ConsistentRead=True)
    seen: list[int] = []
    start: dict | None = None
    for _ in range(20):
        page = ddb.query(**condition, Limit=5, **({"ExclusiveStartKey": start} if start else {}))
        seen += [int(item["sk"]["N"]) for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert seen == list(range(3, 21))
    backwards = ddb.query(**condition, ScanIndexForward=False, Limit=3)
    assert [int(i["sk"]["N"]) for i in backwards["Items"]] == [20, 19, 18]
    filtered = ddb.query(**{**condition, "ExpressionAttributeValues": {
        **condition["ExpressionAttributeValues"], ":t": {"BOOL": True}}},
        FilterExpression="even = :t", Select="COUNT")
    assert filtered["Count"] == 9 and filtered["ScannedCount"] == 18


def test_scan_segments_cover_every_item_once(ddb: Any, table: str) -> None:
    requests = [{"PutRequest": {"Item": {"pk": {"S": f"scan-{i}"}, "sk": {"N": "0"}}}}
                for i in range(25)]
    ddb.batch_write_item(RequestItems={table: requests})
    keys: list[str] = []
    for segment in range(3):
        start: dict | None = None
        for _ in range(50):
            page = ddb.scan(TableName=table, Segment=segment, TotalSegments=3, Limit=7,
                            ConsistentRead=True, FilterExpression="begins_with(pk, :s)",
                            ExpressionAttributeValues={":s": {"S": "scan-"}},
                            **({"ExclusiveStartKey": start} if start else {}))
            keys += [item["pk"]["S"] for item in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
    assert sorted(keys) == sorted(f"scan-{i}" for i in range(25))


def test_batch_get_and_limits(ddb: Any, table: str) -> None:
    items = [{"pk": {"S": f"bg-{i}"}, "sk": {"N": "1"}, "i": {"N": str(i)}} for i in range(30)]
    for chunk in (items[:25], items[25:]):
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": it}} for it in chunk]})
    keys = [{"pk": it["pk"], "sk": it["sk"]} for it in items]
    got = ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
    assert sorted(int(i["i"]["N"]) for i in got["Responses"][table]) == list(range(30))
    with pytest.raises(ClientError) as info:
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": it}} for it in items]})
    assert error_code(info) == "ValidationException"  # more than 25 requests
    with pytest.raises(ClientError) as info:
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": items[0]}},
                                                   {"DeleteRequest": {"Key": keys[0]}}]})
    assert error_code(info) == "ValidationException"  # duplicate keys


def test_consumed_capacity_is_reported(ddb: Any, table: str) -> None:
    key = {"pk": {"S": "cap"}, "sk": {"N": "1"}}
    put = ddb.put_item(TableName=table, Item={**key, "blob": {"S": "x" * 1500}},
                       ReturnConsumedCapacity="TOTAL")
    assert put["ConsumedCapacity"]["CapacityUnits"] == 2.0
    got = ddb.get_item(TableName=table, Key=key, ReturnConsumedCapacity="TOTAL")
    assert got["ConsumedCapacity"]["CapacityUnits"] == 0.5


def test_update_and_delete_table(ddb: Any) -> None:
    name = f"short-lived-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    wait_active(ddb, name)
    ddb.put_item(TableName=name, Item={"id": {"S": "1"}})
    ddb.update_table(TableName=name, BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7})
    described = wait_for(lambda: (lambda t: t if t["TableStatus"] == "ACTIVE" else None)(
        ddb.describe_table(TableName=name)["Table"]), "update applied")
    assert described["ProvisionedThroughput"]["WriteCapacityUnits"] == 7
    assert ddb.delete_table(TableName=name)["TableDescription"]["TableStatus"] == "DELETING"

    def gone() -> bool:
        try:
            ddb.describe_table(TableName=name)
            return False
        except ClientError as error:
            return error.response["Error"]["Code"] == "ResourceNotFoundException"
    wait_for(gone, "table deleted")
    with pytest.raises(ClientError) as info:
        ddb.get_item(TableName=name, Key={"id": {"S": "1"}})
    assert error_code(info) == "ResourceNotFoundException"
