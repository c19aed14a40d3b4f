"""Query and Scan: key conditions, order, Limit and 1 MB pages, filters, Select, segments."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import pytest
from botocore.client import BaseClient

from dynalab.values import item_size
from tests.router.conftest import Harness, create, raw_error

BIG_VALUE = "x" * 100_000  # ~100 KB items: eleven make a 1 MB page


def put_all(ddb: BaseClient, table: str, items: list[dict[str, Any]]) -> None:
    for i in range(0, len(items), 25):
        response = ddb.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": item}} for item in items[i:i + 25]]})
        assert response["UnprocessedItems"] == {}


def pages(call: Any, bound: int = 1000, **request: Any) -> Iterator[dict[str, Any]]:
    """Every page of a Query/Scan, following LastEvaluatedKey (bounded)."""
    for _ in range(bound):
        page = call(**request)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    raise AssertionError("too many pages")


@pytest.fixture(scope="module")
def numbers(ddb: BaseClient) -> str:
    """pk "q" with sk 0..49 (v = sk % 3), pk "other" with sk 0..4."""
    table = create(ddb)
    put_all(ddb, table, [{"pk": {"S": "q"}, "sk": {"N": str(i)}, "v": {"N": str(i % 3)},
                          "extra": {"S": "e"}} for i in range(50)]
            + [{"pk": {"S": "other"}, "sk": {"N": str(i)}} for i in range(5)])
    return table


@pytest.fixture(scope="module")
def flat(ddb: BaseClient) -> str:
    """A hash-only table of 300 items spread over every partition."""
    table = create(ddb, range_key=None)
    put_all(ddb, table, [{"pk": {"S": f"item-{i:03d}"}, "n": {"N": str(i)}} for i in range(300)])
    return table


def sks(items: list[dict[str, Any]]) -> list[int]:
    return [int(item["sk"]["N"]) for item in items]


# ------------------------------------------------------------------------------------ Query

def test_query_range_conditions(ddb: BaseClient, numbers: str) -> None:
    def query(condition: str, **values: Any) -> list[int]:
        return sks(ddb.query(TableName=numbers, KeyConditionExpression=condition,
                             ExpressionAttributeValues={":p": {"S": "q"}, **values})["Items"])

    assert query("pk = :p") == list(range(50))
    assert query("pk = :p AND sk BETWEEN :a AND :b",
                 **{":a": {"N": "10"}, ":b": {"N": "12"}}) == [10, 11, 12]
    assert query("pk = :p AND sk < :a", **{":a": {"N": "3"}}) == [0, 1, 2]
    assert query("pk = :p AND sk >= :a", **{":a": {"N": "48"}}) == [48, 49]
    assert query("pk = :p AND sk = :a", **{":a": {"N": "7"}}) == [7]


def test_query_begins_with_on_a_string_range_key(ddb: BaseClient) -> None:
    table = create(ddb, range_type="S")
    put_all(ddb, table, [{"pk": {"S": "h"}, "sk": {"S": s}} for s in ("a", "ab", "abc", "b", "ac")])
    found = ddb.query(TableName=table, KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
                      ExpressionAttributeValues={":p": {"S": "h"}, ":s": {"S": "ab"}})["Items"]
    assert [i["sk"]["S"] for i in found] == ["ab", "abc"]


def test_query_backwards(ddb: BaseClient, numbers: str) -> None:
    found = ddb.query(TableName=numbers, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "q"}}, ScanIndexForward=False)
    assert sks(found["Items"]) == list(range(49, -1, -1))


@pytest.mark.parametrize("forward", [True, False])
def test_query_limit_pages(ddb: BaseClient, numbers: str, forward: bool) -> None:
    seen: list[int] = []
    all_pages = list(pages(ddb.query, TableName=numbers, KeyConditionExpression="pk = :p",
                           ExpressionAttributeValues={":p": {"S": "q"}}, Limit=7,
                           ScanIndexForward=forward))
    for page in all_pages:
        assert page["Count"] == len(page["Items"]) <= 7
        if "LastEvaluatedKey" in page:
            assert page["LastEvaluatedKey"] == {"pk": {"S": "q"}, "sk": page["Items"][-1]["sk"]}
        seen += sks(page["Items"])
    assert seen == (list(range(50)) if forward else list(range(49, -1, -1)))
    assert len(all_pages) == 8


def test_a_page_that_stops_at_the_limit_has_a_last_key_even_with_nothing_after(
        ddb: BaseClient, numbers: str) -> None:
    """As DynamoDB documents: a LastEvaluatedKey does not promise more data; the client
    learns it has everything from a page without one (here an empty one)."""
    all_pages = list(pages(ddb.query, TableName=numbers, KeyConditionExpression="pk = :p",
                           ExpressionAttributeValues={":p": {"S": "other"}}, Limit=5))
    assert [sks(p["Items"]) for p in all_pages] == [[0, 1, 2, 3, 4], []]
    assert all_pages[0]["LastEvaluatedKey"] == {"pk": {"S": "other"}, "sk": {"N": "4"}}
    scanned = list(pages(ddb.scan, TableName=numbers, Limit=55))
    assert [p["Count"] for p in scanned] == [55, 0] and "LastEvaluatedKey" in scanned[0]


def test_query_pages_at_one_megabyte_counted_before_the_filter(ddb: BaseClient) -> None:
    table = create(ddb)
    put_all(ddb, table, [{"pk": {"S": "big"}, "sk": {"N": str(i)}, "blob": {"S": BIG_VALUE}}
                         for i in range(25)])
    all_pages = list(pages(ddb.query, TableName=table, KeyConditionExpression="pk = :p",
                           FilterExpression="sk = :z",
                           ExpressionAttributeValues={":p": {"S": "big"}, ":z": {"N": "0"}},
                           ReturnConsumedCapacity="TOTAL"))
    assert [p["ScannedCount"] for p in all_pages] == [11, 11, 3]
    assert [p["Count"] for p in all_pages] == [1, 0, 0]  # only sk 0 passes the filter
    assert all_pages[0]["LastEvaluatedKey"] == {"pk": {"S": "big"}, "sk": {"N": "10"}}
    size = item_size({"pk": {"S": "big"}, "sk": {"N": "0"}, "blob": {"S": BIG_VALUE}})
    assert all_pages[0]["ConsumedCapacity"]["CapacityUnits"] == -(-11 * size // 4096) / 2


def test_query_select_count_and_filter(ddb: BaseClient, numbers: str) -> None:
    counted = ddb.query(TableName=numbers, KeyConditionExpression="pk = :p", Select="COUNT",
                        FilterExpression="v = :zero",
                        ExpressionAttributeValues={":p": {"S": "q"}, ":zero": {"N": "0"}})
    assert "Items" not in counted
    assert (counted["Count"], counted["ScannedCount"]) == (17, 50)


def test_query_projection(ddb: BaseClient, numbers: str) -> None:
    found = ddb.query(TableName=numbers, KeyConditionExpression="pk = :p AND sk = :s",
                      ProjectionExpression="v", ExpressionAttributeValues={
                          ":p": {"S": "q"}, ":s": {"N": "4"}})["Items"]
    assert found == [{"v": {"N": "1"}}]


def test_query_legacy_parameters(ddb: BaseClient, numbers: str) -> None:
    found = ddb.query(TableName=numbers, KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "q"}]},
        "sk": {"ComparisonOperator": "LE", "AttributeValueList": [{"N": "5"}]}},
        QueryFilter={"v": {"ComparisonOperator": "EQ", "AttributeValueList": [{"N": "2"}]}},
        AttributesToGet=["sk"])
    assert found["Items"] == [{"sk": {"N": "2"}}, {"sk": {"N": "5"}}]
    assert found["ScannedCount"] == 6


def test_query_other_partition_key_is_separate(ddb: BaseClient, numbers: str) -> None:
    found = ddb.query(TableName=numbers, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "other"}})
    assert sks(found["Items"]) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("body, message", [
    ({"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "q"}},
      "ExclusiveStartKey": {"pk": {"S": "other"}, "sk": {"N": "1"}}},
     "The provided starting key is outside query boundaries based on provided conditions"),
    ({"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "q"}},
      "ExclusiveStartKey": {"pk": {"S": "q"}}},
     "The provided starting key is invalid: The provided key element does not match the schema"),
    ({"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "q"}},
      "Select": "ALL_ATTRIBUTES", "ProjectionExpression": "v"},
     "Cannot specify the ProjectionExpression when choosing to get ALL_ATTRIBUTES"),
    ({"KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "q"}]}},
      "Select": "COUNT", "AttributesToGet": ["v"]},
     "Cannot specify the AttributesToGet when choosing to get only the Count"),
    ({"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "q"}},
      "Limit": 0},
     "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must "
     "have value greater than or equal to 1"),
    ({}, "Either the KeyConditions or KeyConditionExpression parameter must be specified in the "
         "request."),
    ({"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "q"}},
      "IndexName": "byV"}, "The table does not have the specified index: byV"),
])
def test_query_validation(harness: Harness, numbers: str, body: dict[str, Any],
                          message: str) -> None:
    assert raw_error(harness, "Query", {"TableName": numbers, **body}) == (
        "ValidationException", message)


# ------------------------------------------------------------------------------------- Scan

def scan_keys(ddb: BaseClient, table: str, **request: Any) -> list[str]:
    return [item["pk"]["S"] for page in pages(ddb.scan, TableName=table, **request)
            for item in page["Items"]]


def test_scan_returns_every_item_once_in_storage_order(ddb: BaseClient, flat: str,
                                                       harness: Harness) -> None:
    expected = [item["pk"]["S"] for item in harness.on_loop(lambda: harness.cluster.items_of(flat))]
    assert len(expected) == 300
    assert scan_keys(ddb, flat) == expected
    assert scan_keys(ddb, flat, Limit=17) == expected


def test_scan_last_evaluated_key_resumes_across_partitions(ddb: BaseClient, flat: str,
                                                           harness: Harness) -> None:
    first = ddb.scan(TableName=flat, Limit=1)
    partitions = harness.router.routing.pmap.partitions
    # Single-item pages walk every partition boundary; stop early to keep this quick.
    keys = [first["Items"][0]["pk"]["S"]]
    request = {"ExclusiveStartKey": first["LastEvaluatedKey"]}
    for _ in range(60):
        page = ddb.scan(TableName=flat, Limit=1, **request)
        keys += [item["pk"]["S"] for item in page["Items"]]
        request = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    expected = [i["pk"]["S"] for i in harness.on_loop(lambda: harness.cluster.items_of(flat))]
    assert keys == expected[:61]
    assert len(partitions) > 1


@pytest.mark.parametrize("total", [1, 3, 7])
def test_scan_segments_cover_every_item_exactly_once(ddb: BaseClient, flat: str,
                                                     total: int) -> None:
    found = Counter(key for segment in range(total)
                    for key in scan_keys(ddb, flat, Segment=segment, TotalSegments=total, Limit=40))
    assert set(found.values()) == {1}
    assert len(found) == 300


def test_scan_filter_select_count(ddb: BaseClient, flat: str) -> None:
    counted = ddb.scan(TableName=flat, Select="COUNT", FilterExpression="n < :ten",
                       ExpressionAttributeValues={":ten": {"N": "10"}})
    assert (counted["Count"], counted["ScannedCount"]) == (10, 300)
    legacy = ddb.scan(TableName=flat, ScanFilter={
        "n": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "5"}, {"N": "7"}]}})
    assert sorted(int(i["n"]["N"]) for i in legacy["Items"]) == [5, 6, 7]


def test_scan_reads_from_same_az_replicas_unless_consistent(ddb: BaseClient, flat: str,
                                                            harness: Harness) -> None:
    start = harness.on_loop(lambda: len(harness.cluster.calls))
    ddb.scan(TableName=flat)
    ddb.scan(TableName=flat, ConsistentRead=True)
    ranges = harness.on_loop(lambda: [c for c in harness.cluster.calls[start:]
                                      if c.operation == "Range"])
    leaders = harness.on_loop(lambda: dict(harness.cluster.leaders))
    eventual = [c for c in ranges if not c.body["consistent"]]
    strong = [c for c in ranges if c.body["consistent"]]
    assert eventual and strong
    assert {harness.topology.az_of(c.node) for c in eventual} == {"use1-az1"}
    assert all(c.node == leaders[c.partition] for c in strong)


@pytest.mark.parametrize("body, message", [
    ({"Segment": 1}, "The TotalSegments parameter is required but was not present in the request "
                     "when Segment parameter is present"),
    ({"TotalSegments": 2}, "The Segment parameter is required but was not present in the request "
                           "when parameter TotalSegments is present"),
    ({"Segment": 3, "TotalSegments": 3}, "The Segment parameter is zero-based and must be less "
                                         "than parameter TotalSegments: Segment: 3 is not less "
                                         "than TotalSegments: 3"),
    ({"Select": "SOME"}, "1 validation error detected: Value 'SOME' at 'select' failed to satisfy "
                         "constraint: Member must satisfy enum value set: [ALL_ATTRIBUTES, "
                         "ALL_PROJECTED_ATTRIBUTES, SPECIFIC_ATTRIBUTES, COUNT]"),
    ({"ExclusiveStartKey": {"nope": {"S": "x"}}},
     "The provided starting key is invalid: The provided key element does not match the schema"),
])
def test_scan_validation(harness: Harness, flat: str, body: dict[str, Any], message: str) -> None:
    assert raw_error(harness, "Scan", {"TableName": flat, **body}) == (
        "ValidationException", message)
