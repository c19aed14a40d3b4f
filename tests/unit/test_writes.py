"""dynalab.writes: router-side validation and replica-side apply of single-item writes."""
from __future__ import annotations

import pytest

from dynalab import writes
from dynalab.errors import ConditionalCheckFailedException, ValidationException
from dynalab.values import KeySchema

SCHEMA = KeySchema("pk", "S", "sk", "N")
KEY = {"pk": {"S": "a"}, "sk": {"N": "1"}}


def put(item: dict, **extra) -> writes.PreparedWrite:
    return writes.prepare("PutItem", {"Item": item, **extra}, SCHEMA)


def test_put_applies_and_returns_old_when_asked() -> None:
    old = {**KEY, "v": {"S": "old"}}
    out = writes.apply(put({**KEY, "v": {"S": "new"}}, ReturnValues="ALL_OLD"), old)
    assert out.item == {**KEY, "v": {"S": "new"}}
    assert out.changed and out.attributes == old


def test_put_canonicalizes_numbers_before_logging() -> None:
    write = put({"pk": {"S": "a"}, "sk": {"N": "1.0"}, "n": {"N": "-0"}})
    assert write.key["sk"] == {"N": "1"}
    assert writes.decode(writes.encode(write)) == write
    assert writes.apply(write, None).item["n"] == {"N": "0"}


def test_condition_failure_changes_nothing_and_returns_old_item_on_request() -> None:
    old = {**KEY, "v": {"N": "5"}}
    write = put({**KEY}, ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
    with pytest.raises(ConditionalCheckFailedException) as failure:
        writes.apply(write, old)
    assert failure.value.item == old
    plain = put({**KEY}, ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(ConditionalCheckFailedException) as failure:
        writes.apply(plain, old)
    assert failure.value.item is None


def test_update_creates_item_from_key_and_returns_updated_new() -> None:
    write = writes.prepare("UpdateItem", {
        "Key": KEY, "UpdateExpression": "SET c = if_not_exists(c, :z) + :one ADD s :s",
        "ExpressionAttributeValues": {":z": {"N": "0"}, ":one": {"N": "1"}, ":s": {"SS": ["x"]}},
        "ReturnValues": "UPDATED_NEW"}, SCHEMA)
    first = writes.apply(write, None)
    assert first.item == {**KEY, "c": {"N": "1"}, "s": {"SS": ["x"]}}
    assert first.attributes == {"c": {"N": "1"}, "s": {"SS": ["x"]}}
    second = writes.apply(write, first.item)
    assert second.item["c"] == {"N": "2"}


def test_update_of_a_key_attribute_is_refused() -> None:
    with pytest.raises(ValidationException, match="Cannot update attribute sk. This attribute is part of the key"):
        writes.prepare("UpdateItem", {"Key": KEY, "UpdateExpression": "SET sk = :v",
                                      "ExpressionAttributeValues": {":v": {"N": "2"}}}, SCHEMA)


def test_update_type_error_surfaces_at_apply() -> None:
    write = writes.prepare("UpdateItem", {"Key": KEY, "UpdateExpression": "SET v = v + :one",
                                          "ExpressionAttributeValues": {":one": {"N": "1"}}}, SCHEMA)
    with pytest.raises(ValidationException):
        writes.apply(write, {**KEY, "v": {"S": "text"}})


def test_delete_returns_all_old_and_removes() -> None:
    write = writes.prepare("DeleteItem", {"Key": KEY, "ReturnValues": "ALL_OLD"}, SCHEMA)
    old = {**KEY, "v": {"BOOL": True}}
    out = writes.apply(write, old)
    assert out.item is None and out.attributes == old
    assert writes.apply(write, None) == writes.WriteOutcome(None, False, None)


@pytest.mark.parametrize(("operation", "value", "message"), [
    ("PutItem", "ALL_NEW", "ReturnValues can only be ALL_OLD or NONE"),
    ("DeleteItem", "UPDATED_OLD", "ReturnValues can only be ALL_OLD or NONE"),
    ("UpdateItem", "SOME", "failed to satisfy constraint"),
])
def test_return_values_are_checked_per_operation(operation: str, value: str, message: str) -> None:
    request = {"Item": KEY} if operation == "PutItem" else {"Key": KEY}
    with pytest.raises(ValidationException, match=message):
        writes.prepare(operation, {**request, "ReturnValues": value}, SCHEMA)


def test_bad_key_and_bad_expression_are_refused_before_any_log() -> None:
    with pytest.raises(ValidationException, match="Missing the key sk"):
        put({"pk": {"S": "a"}})
    with pytest.raises(ValidationException):
        put(KEY, ConditionExpression="attribute_exists(")
