"""CreateTable, DescribeTable, ListTables, DeleteTable, UpdateTable through boto3."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.router.conftest import Harness, create, raw_error, unique, wait_active, wait_gone

KEYS = {"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}
ON_DEMAND = {**KEYS, "BillingMode": "PAY_PER_REQUEST"}


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def catalog_names(harness: Harness) -> set[str]:
    return harness.on_loop(lambda: set(harness.cluster.catalog))


# ------------------------------------------------------------------------------- CreateTable

def test_create_table_answers_creating_then_becomes_active(ddb: BaseClient) -> None:
    name = unique()
    description = ddb.create_table(TableName=name, **ON_DEMAND)["TableDescription"]
    assert description["TableStatus"] == "CREATING"
    assert description["TableName"] == name
    assert description["KeySchema"] == KEYS["KeySchema"]
    table = wait_active(ddb, name)
    assert table["TableArn"] == f"arn:aws:dynamodb:us-east-1:000000000000:table/{name}"
    assert table["TableId"] == description["TableId"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["ItemCount"] == 0 and table["TableSizeBytes"] == 0


def test_create_provisioned_table_describes_its_throughput(ddb: BaseClient) -> None:
    name = unique()
    ddb.create_table(TableName=name, **KEYS,
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7})
    table = wait_active(ddb, name)
    assert table["ProvisionedThroughput"] == {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 5,
                                              "WriteCapacityUnits": 7}
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"


def test_stream_specification_is_stored_and_described(ddb: BaseClient) -> None:
    name = create(ddb, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["LatestStreamArn"] == f"{table['TableArn']}/stream/{table['LatestStreamLabel']}"


def test_existing_name_is_resource_in_use(ddb: BaseClient, harness: Harness) -> None:
    name = create(ddb, range_key=None)
    assert error_of(ddb.create_table, TableName=name, **ON_DEMAND) == (
        "ResourceInUseException", f"Table already exists: {name}")


def test_meta_group_enforces_unique_names_for_routers_with_stale_caches(
        ddb: BaseClient, harness: Harness) -> None:
    name = create(ddb, range_key=None)
    harness.on_loop(lambda: harness.router.catalog.forget(name))  # as if another router made it
    code, _ = error_of(ddb.create_table, TableName=name, **ON_DEMAND)
    assert code == "ResourceInUseException"


@pytest.mark.parametrize("request_, message", [
    ({"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                               {"AttributeName": "x", "AttributeType": "S"}],
      "KeySchema": KEYS["KeySchema"]},
     "One or more parameter values were invalid: Number of attributes in KeySchema does not "
     "exactly match number of attributes defined in AttributeDefinitions"),
    ({"AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}],
      "KeySchema": KEYS["KeySchema"]},
     "One or more parameter values were invalid: Some index key attributes are not defined in "
     "AttributeDefinitions. Keys: [pk], AttributeDefinitions: [a]"),
    ({"AttributeDefinitions": KEYS["AttributeDefinitions"],
      "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"}]},
     "Invalid KeySchema: Some index key attribute have no definition"),
    ({"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                               {"AttributeName": "sk", "AttributeType": "S"}],
      "KeySchema": [{"AttributeName": "pk", "KeyType": "RANGE"},
                    {"AttributeName": "sk", "KeyType": "HASH"}]},
     "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"),
    ({"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                               {"AttributeName": "x", "AttributeType": "S"}],
      "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "pk", "KeyType": "RANGE"}]},
     "Both the Hash Key and the Range Key element in the KeySchema have the same name"),
    ({"AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "X"}],
      "KeySchema": KEYS["KeySchema"]},
     "1 validation error detected: Value 'X' at 'attributeDefinitions.1.member.attributeType' "
     "failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"),
])
def test_key_schema_validation(ddb: BaseClient, harness: Harness, request_: dict[str, Any],
                               message: str) -> None:
    name = unique()
    assert error_of(ddb.create_table, TableName=name, BillingMode="PAY_PER_REQUEST",
                    **request_) == ("ValidationException", message)
    assert name not in catalog_names(harness)  # bad input changes nothing


@pytest.mark.parametrize("request_, message", [
    ({"BillingMode": "PAY_PER_REQUEST",
      "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}},
     "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits "
     "can be specified when BillingMode is PAY_PER_REQUEST"),
    ({}, "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must "
         "both be specified when BillingMode is PROVISIONED"),
])
def test_billing_validation(ddb: BaseClient, harness: Harness, request_: dict[str, Any],
                            message: str) -> None:
    name = unique()
    assert error_of(ddb.create_table, TableName=name, **KEYS, **request_) == (
        "ValidationException", message)
    assert name not in catalog_names(harness)


def test_throughput_constraints(harness: Harness) -> None:
    name = unique()
    assert raw_error(harness, "CreateTable", {"TableName": name, **KEYS, "ProvisionedThroughput": {
        "ReadCapacityUnits": 0, "WriteCapacityUnits": 1}}) == (
        "ValidationException",
        "1 validation error detected: Value '0' at 'provisionedThroughput.readCapacityUnits' "
        "failed to satisfy constraint: Member must have value greater than or equal to 1")
    assert name not in catalog_names(harness)


def test_table_name_rules(ddb: BaseClient) -> None:
    code, message = error_of(ddb.create_table, TableName="a b!", **ON_DEMAND)
    assert code == "ValidationException"
    assert message == ("1 validation error detected: Value 'a b!' at 'tableName' failed to "
                       "satisfy constraint: Member must satisfy regular expression pattern: "
                       "[a-zA-Z0-9_.-]+")
    assert error_of(ddb.describe_table, TableName="x" * 256)[1] == (
        "1 validation error detected: Value '" + "x" * 256 + "' at 'tableName' failed to satisfy "
        "constraint: Member must have length less than or equal to 255")


def test_many_constraint_violations_are_reported_together(harness: Harness) -> None:
    with pytest.raises(Exception) as caught:
        harness.run(harness.router.handle("CreateTable",
                                          {"TableName": "ab", "BillingMode": "FREE"}))
    message = str(caught.value)
    assert message.startswith("4 validation errors detected: ")
    for part in ("'tableName'", "'attributeDefinitions'", "'keySchema'", "'billingMode'"):
        assert part in message


def test_secondary_indexes_are_refused_clearly(ddb: BaseClient, harness: Harness) -> None:
    name = unique()
    code, message = error_of(
        ddb.create_table, TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        KeySchema=KEYS["KeySchema"],
        GlobalSecondaryIndexes=[{"IndexName": "gsi", "KeySchema": [
            {"AttributeName": "g", "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}])
    assert code == "ValidationException" and "Secondary indexes are not supported" in message
    assert name not in catalog_names(harness)


def test_data_plane_on_a_creating_table_is_not_found(harness: Harness) -> None:
    original = harness.router.config
    slow = dataclasses.replace(original, create_delay_ms=60_000)
    name = unique()
    harness.on_loop(lambda: setattr(harness.router, "config", slow))
    try:
        ddb = harness.client()
        ddb.create_table(TableName=name, **ON_DEMAND)
        assert error_of(ddb.put_item, TableName=name, Item={"pk": {"S": "a"}}) == (
            "ResourceNotFoundException", "Requested resource not found")
        assert error_of(ddb.delete_table, TableName=name) == (
            "ResourceInUseException",
            f"Attempt to change a resource which is still in use: Table is being created: {name}")
    finally:
        harness.on_loop(lambda: setattr(harness.router, "config", original))


def test_unknown_table_refreshes_the_catalog_once_before_not_found(
        ddb: BaseClient, harness: Harness) -> None:
    name = create(ddb, range_key=None)
    harness.on_loop(lambda: harness.router.catalog.forget(name))  # as if made by another router
    before = harness.on_loop(lambda: len(harness.cluster.calls_of("Meta")))
    ddb.put_item(TableName=name, Item={"pk": {"S": "found"}})
    catalog_calls = harness.on_loop(lambda: [c for c in harness.cluster.calls_of("Meta")[before:]
                                             if c.body["op"] == "Catalog"])
    assert 1 <= len(catalog_calls) <= 2  # the miss's refresh, maybe one background refresh
    assert error_of(ddb.get_item, TableName="never-made", Key={"pk": {"S": "a"}}) == (
        "ResourceNotFoundException", "Requested resource not found")


# ----------------------------------------------------------------------------- ListTables

def test_list_tables_pages_in_name_order(ddb: BaseClient, harness: Harness) -> None:
    everything = sorted(harness.on_loop(lambda: list(harness.cluster.catalog)) + [
        create(ddb, range_key=None) for _ in range(3)])
    seen: list[str] = []
    start: dict[str, str] = {}
    for _ in range(len(everything) + 1):
        page = ddb.list_tables(Limit=2, **start)
        seen += page["TableNames"]
        assert len(page["TableNames"]) <= 2
        if "LastEvaluatedTableName" not in page:
            break
        start = {"ExclusiveStartTableName": page["LastEvaluatedTableName"]}
    assert seen == sorted(set(seen)) and set(everything) <= set(seen)


def test_list_tables_limit_bounds(ddb: BaseClient) -> None:
    assert error_of(ddb.list_tables, Limit=101) == (
        "ValidationException", "1 validation error detected: Value '101' at 'limit' failed to "
        "satisfy constraint: Member must have value less than or equal to 100")


# ---------------------------------------------------------------------------- DeleteTable

def test_delete_table_drops_every_partition_then_removes_it(ddb: BaseClient,
                                                            harness: Harness) -> None:
    name = create(ddb, range_key=None)
    for i in range(20):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}})
    table_id = harness.on_loop(lambda: harness.cluster.catalog[name]["id"])
    assert ddb.delete_table(TableName=name)["TableDescription"]["TableStatus"] == "DELETING"
    wait_gone(ddb, name)
    drops = harness.on_loop(lambda: {c.partition for c in harness.cluster.calls_of("DropTable")
                                     if c.body["table"] == table_id})
    assert drops == {p.id for p in harness.router.routing.pmap.partitions}
    assert not harness.on_loop(lambda: [k for s in harness.cluster.stores.values() for k in s
                                        if k.hex().startswith(table_id)])
    assert error_of(ddb.describe_table, TableName=name)[0] == "ResourceNotFoundException"
    assert error_of(ddb.delete_table, TableName=name) == (
        "ResourceNotFoundException", f"Requested resource not found: Table: {name} not found")


def test_recreated_table_does_not_see_old_items(ddb: BaseClient) -> None:
    name = create(ddb, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "old"}})
    ddb.delete_table(TableName=name)
    wait_gone(ddb, name)
    create(ddb, name, range_key=None)
    assert "Item" not in ddb.get_item(TableName=name, Key={"pk": {"S": "old"}})


def test_deletion_protection(ddb: BaseClient) -> None:
    name = create(ddb, range_key=None, DeletionProtectionEnabled=True)
    code, message = error_of(ddb.delete_table, TableName=name)
    assert code == "ValidationException" and "protected against deletion" in message
    ddb.update_table(TableName=name, DeletionProtectionEnabled=False)
    ddb.delete_table(TableName=name)
    wait_gone(ddb, name)


# ---------------------------------------------------------------------------- UpdateTable

def test_update_billing_and_throughput(ddb: BaseClient) -> None:
    name = create(ddb, range_key=None)
    described = ddb.update_table(
        TableName=name, BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 4})["TableDescription"]
    assert described["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert described["ProvisionedThroughput"]["ReadCapacityUnits"] == 3
    code, message = error_of(ddb.update_table, TableName=name, ProvisionedThroughput={
        "ReadCapacityUnits": 3, "WriteCapacityUnits": 4})
    assert code == "ValidationException"
    assert message.startswith("The provisioned throughput for the table will not change.")
    back = ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")["TableDescription"]
    assert back["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 0


def test_update_stream_specification(ddb: BaseClient) -> None:
    name = create(ddb, range_key=None)
    assert error_of(ddb.update_table, TableName=name,
                    StreamSpecification={"StreamEnabled": False}) == (
        "ValidationException", f"Table has no stream to disable: TableName: {name}")
    enabled = ddb.update_table(TableName=name, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})["TableDescription"]
    assert enabled["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert "LatestStreamArn" in enabled
    assert error_of(ddb.update_table, TableName=name, StreamSpecification={
        "StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}) == (
        "ValidationException", f"Table already has an enabled stream: TableName: {name}")
    disabled = ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    assert "StreamSpecification" not in disabled["TableDescription"]


def test_replica_updates_are_checked_against_the_topology(ddb: BaseClient) -> None:
    """Replicas are created for real (router/replicas.py; tests/global_tables runs them on two
    regions); a one-region cluster can only refuse them."""
    name = create(ddb, range_key=None)
    code, message = error_of(ddb.update_table, TableName=name, ReplicaUpdates=[
        {"Create": {"RegionName": "eu-west-1"}}])
    assert code == "ValidationException" and "eu-west-1 is not part of this cluster" in message
    code, message = error_of(ddb.update_table, TableName=name, ReplicaUpdates=[
        {"Create": {"RegionName": "us-east-1"}}])
    assert code == "ValidationException" and "already there" in message
    code, message = error_of(ddb.update_table, TableName=name, ReplicaUpdates=[
        {"Delete": {"RegionName": "eu-west-1"}}])
    assert code == "ValidationException" and "not found: eu-west-1" in message
    assert "Replicas" not in ddb.describe_table(TableName=name)["Table"]


def test_update_table_needs_something_to_change(ddb: BaseClient) -> None:
    name = create(ddb, range_key=None)
    assert error_of(ddb.update_table, TableName=name) == (
        "ValidationException",
        "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, "
        "GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required")
    assert error_of(ddb.update_table, TableName="nope-table", BillingMode="PAY_PER_REQUEST") == (
        "ResourceNotFoundException", "Requested resource not found: Table: nope-table not found")
