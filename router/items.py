"""Single-item operations: PutItem, UpdateItem, DeleteItem, GetItem.

Writes are validated here once (`dynalab.writes.prepare`) and sent as one `Write` to the key's
partition leader, which proposes it; conditions are evaluated when the entry is applied, on every
replica. Reads go to the leader when consistent, else to a replica in the router's AZ.
"""
from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

import orjson

from dynalab import writes
from dynalab.capacity import read_units, write_units
from dynalab.expressions import compile_request, project
from dynalab.layout import item_key
from dynalab.values import Item, item_size, validate_key
from router.catalog import TableInfo
from router.params import Checks, capacity_mode, consumed, field_bool, field_str
from router.streams import write_flags

if TYPE_CHECKING:
    from router.app import Router

__all__ = ["put_item", "update_item", "delete_item", "get_item", "read_item", "b64"]

_METRICS = ("SIZE", "NONE")
# A GetItem with only these has nothing for compile_request to compile or reject (it would
# return an empty CompiledRequest): skipping it saves ~4% of the router's CPU per GetItem.
_PLAIN_GET = frozenset({"TableName", "Key", "ConsistentRead", "ReturnConsumedCapacity"})

# Test-only switch, read once at start: answer strongly consistent GetItems from a replica in the
# router's AZ, as eventually consistent ones are answered. It breaks read-your-writes on purpose
# so the chaos tests can show the experiment verdict catches stale strong reads
# (tests/chaos_cluster, docs/cluster.md). Never set it outside tests.
UNSAFE_STRONG_READS_ENV = "DYNALAB_TEST_UNSAFE_STRONG_READS_FROM_REPLICA"
_UNSAFE_STRONG_READS = os.environ.get(UNSAFE_STRONG_READS_ENV) == "1"


async def put_item(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    return await _write(router, "PutItem", body)


async def update_item(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    return await _write(router, "UpdateItem", body)


async def delete_item(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    return await _write(router, "DeleteItem", body)


async def _write(router: Router, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    checks = Checks()
    mode = capacity_mode(body, checks)
    checks.enum(field_str(body, "ReturnItemCollectionMetrics"), "returnItemCollectionMetrics",
                _METRICS)
    if operation == "PutItem":
        checks.not_null(body.get("Item"), "item")
    else:
        checks.not_null(body.get("Key"), "key")
    table = await router.active_table(body, checks)
    prepared = writes.prepare(operation, body, table.schema)
    partition = router.routing.partition_for(prepared.key, table.schema)
    answer = await router.routing.call_leader(
        partition, "Write", {"table": table.id, "write": orjson.Fragment(writes.encode(prepared)),
                             **write_flags(table)},
        idempotent=False)
    out: dict[str, Any] = {}
    attributes = answer.get("Attributes")
    if attributes:
        out["Attributes"] = attributes
    if mode != "NONE":  # (sizing the item is work; NONE reports nothing)
        # DynamoDB bills the larger of the old and new item; the router sees only what it sent
        # and what came back, so this is a lower bound (at least one unit, as always).
        size = max(item_size(prepared.request.get("Item") or {}), item_size(attributes or {}))
        _add_capacity(out, mode, table, write_units(size))
    return out


async def get_item(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    checks = Checks()
    mode = capacity_mode(body, checks)
    consistent = bool(field_bool(body, "ConsistentRead"))
    checks.not_null(body.get("Key"), "key")
    table = await router.active_table(body, checks)
    key = validate_key(body.get("Key"), table.schema)
    projection = None if body.keys() <= _PLAIN_GET else compile_request("GetItem", body).projection
    item = await read_item(router, table, key, consistent)
    out: dict[str, Any] = {}
    if item is not None:
        out["Item"] = project(item, projection.paths) if projection else item
    if mode != "NONE":
        _add_capacity(out, mode, table, read_units(item_size(item or {}), consistent=consistent))
    return out


async def read_item(router: Router, table: TableInfo, key: Item, consistent: bool) -> Item | None:
    """The stored item under `key` (None: no item)."""
    consistent = consistent and not _UNSAFE_STRONG_READS
    routing = router.routing
    partition = routing.partition_for(key, table.schema)
    request = {"table": table.id, "key": b64(item_key(table.id, key, table.schema)),
               "consistent": consistent}
    if consistent:
        answer = await routing.call_leader(partition, "Get", request, idempotent=True)
    else:
        answer = await routing.call_replica(partition, "Get", request)
    return answer.get("Item") or None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _add_capacity(out: dict[str, Any], mode: str, table: TableInfo, units: float) -> None:
    entry = consumed(mode, table.name, units)
    if entry is not None:
        out["ConsumedCapacity"] = entry
