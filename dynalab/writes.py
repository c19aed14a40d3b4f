"""One item write (PutItem, UpdateItem, DeleteItem): validated once, applied on every replica.

A write goes through two pure steps, in two places:

* `prepare(operation, request, schema)` runs in the router. It does every check DynamoDB does
  without looking at the stored item (attribute values, key, expressions, ReturnValues, updates
  that touch key attributes), so bad input is refused before it reaches any log.
* `apply(write, old_item)` runs on each replica when the write's log entry is committed, in log
  order. It reads nothing but its arguments, so every replica reaches the same item; conditions
  are evaluated here, against the item as of this point in the log.

`encode`/`decode` give the log-entry form (JSON bytes).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import orjson

from dynalab import values as avs
from dynalab.errors import ConditionalCheckFailedException, ValidationException
from dynalab.expressions import (CompiledRequest, apply_update, check_key_untouched,
                                 compile_request, evaluate, project)
from dynalab.values import Item, KeySchema

__all__ = ["PreparedWrite", "WriteOutcome", "prepare", "apply", "encode", "decode", "OPERATIONS"]

OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem")

# The request fields that the apply step needs; everything else stays in the router.
_APPLY_FIELDS = ("Item", "Key", "UpdateExpression", "ConditionExpression",
                 "ExpressionAttributeNames", "ExpressionAttributeValues", "Expected",
                 "AttributeUpdates", "ConditionalOperator", "ReturnValues",
                 "ReturnValuesOnConditionCheckFailure")

_RETURN_VALUES = {
    "PutItem": ("NONE", "ALL_OLD"),
    "DeleteItem": ("NONE", "ALL_OLD"),
    "UpdateItem": ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"),
}
_ALL_RETURN_VALUES = "[ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"


@dataclass(frozen=True)
class PreparedWrite:
    """A validated write, as it travels in a log entry."""

    operation: str
    schema: KeySchema
    key: Item
    request: Mapping[str, Any]  # the client's fields named in _APPLY_FIELDS, parsed and canonical


@dataclass(frozen=True)
class WriteOutcome:
    """What applying a write did: the item to store (None: no item now) and what to answer."""

    item: Item | None
    changed: bool
    attributes: Item | None  # the response's Attributes (None: leave them out)


def prepare(operation: str, request: Mapping[str, Any], schema: KeySchema) -> PreparedWrite:
    """Validate a write request as the router receives it. Raises ClientError subclasses."""
    if operation not in OPERATIONS:
        raise ValueError(f"not a single-item write: {operation}")
    fields = {name: request[name] for name in _APPLY_FIELDS if request.get(name) is not None}
    if operation == "PutItem":
        fields["Item"] = avs.parse_item(request.get("Item"))
        key = avs.key_of(fields["Item"], schema)
    else:
        key = avs.validate_key(request.get("Key"), schema)
        fields["Key"] = key
    _check_return_values(operation, fields)
    compiled = compile_request(operation, fields)
    if compiled.update is not None:
        check_key_untouched(compiled.update, schema)
    return PreparedWrite(operation, schema, key, fields)


def apply(write: PreparedWrite, old: Item | None) -> WriteOutcome:
    """Apply a committed write to the stored item `old` (None: no item). Deterministic.

    Raises ConditionalCheckFailedException (with the old item when the request asked for it) and
    ValidationException for failures that depend on the stored item (e.g. arithmetic on a string,
    or an update that makes the item too large). Either way nothing is stored.
    """
    compiled = _compiled(write)
    if compiled.condition is not None and not evaluate(compiled.condition, old):
        wanted = write.request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
        raise ConditionalCheckFailedException(item=old if wanted and old else None)
    if write.operation == "PutItem":
        new: Item | None = dict(write.request["Item"])
    elif write.operation == "DeleteItem":
        new = None
    else:
        new = _updated(compiled, write, old)
    return WriteOutcome(new, new != old, _returned(write, compiled, old, new))


def encode(write: PreparedWrite) -> bytes:
    schema = write.schema
    return orjson.dumps({"op": write.operation, "schema": [schema.hash_name, schema.hash_type,
                                                          schema.range_name, schema.range_type],
                         "key": write.key, "req": write.request})


def decode(data: bytes) -> PreparedWrite:
    raw = orjson.loads(data)
    return PreparedWrite(raw["op"], KeySchema(*raw["schema"]), raw["key"], raw["req"])


def _updated(compiled: CompiledRequest, write: PreparedWrite, old: Item | None) -> Item:
    base = dict(old) if old is not None else dict(write.key)
    new = apply_update(compiled.update, base) if compiled.update is not None else base
    if avs.item_size(new) > avs.MAX_ITEM_SIZE_BYTES:
        raise ValidationException("Item size to update has exceeded the maximum allowed size")
    return new


def _returned(write: PreparedWrite, compiled: CompiledRequest, old: Item | None,
              new: Item | None) -> Item | None:
    wanted = write.request.get("ReturnValues", "NONE")
    if wanted == "ALL_OLD":
        chosen = old
    elif wanted == "ALL_NEW":
        chosen = new
    elif wanted in ("UPDATED_OLD", "UPDATED_NEW") and compiled.update is not None:
        source = old if wanted == "UPDATED_OLD" else new
        chosen = project(source, compiled.update.target_paths) if source else None
    else:
        chosen = None
    return chosen or None


# Values that compile_request never reads: left out of the cache key, or every PutItem (a new
# Item each time) would miss the cache and be compiled again, JSON round trip included.
_NOT_COMPILED = ("Item", "Key")


def _compiled(write: PreparedWrite) -> CompiledRequest:
    # Replicas apply the same few request shapes over and over: compile each text once.
    request = write.request
    if "Item" in request or "Key" in request:
        request = {k: v for k, v in request.items() if k not in _NOT_COMPILED}
    return _compile_cached(write.operation, orjson.dumps(request, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=4096)
def _compile_cached(operation: str, request_json: bytes) -> CompiledRequest:
    return compile_request(operation, orjson.loads(request_json))


def _check_return_values(operation: str, fields: Mapping[str, Any]) -> None:
    wanted = fields.get("ReturnValues", "NONE")
    if wanted not in _RETURN_VALUES["UpdateItem"]:
        raise ValidationException(
            f"1 validation error detected: Value '{wanted}' at 'returnValues' failed to satisfy "
            f"constraint: Member must satisfy enum value set: {_ALL_RETURN_VALUES}")
    if wanted not in _RETURN_VALUES[operation]:
        raise ValidationException("ReturnValues can only be ALL_OLD or NONE")
    on_failure = fields.get("ReturnValuesOnConditionCheckFailure", "NONE")
    if on_failure not in ("NONE", "ALL_OLD"):
        raise ValidationException(
            f"1 validation error detected: Value '{on_failure}' at "
            "'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must "
            "satisfy enum value set: [ALL_OLD, NONE]")

