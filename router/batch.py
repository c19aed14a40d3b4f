"""BatchGetItem and BatchWriteItem: fan-out to partitions, partial success as DynamoDB reports it.

A batch is validated whole before anything is sent (bad input changes nothing). Then:

* BatchGetItem: one Get per key, all at once (they share the node streams' batches); a key whose
  partition cannot answer goes back in UnprocessedKeys, as do keys past the 16 MB response limit.
* BatchWriteItem: the writes are grouped per partition and each group is ONE `BatchWrite` (one
  Raft proposal); a group whose partition fails goes back in UnprocessedItems. Puts and deletes
  without conditions are idempotent, so a group may be retried safely (by us or the client).
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from dynalab import writes
from dynalab.capacity import read_units, write_units
from dynalab.errors import ClientError, DynalabError, ValidationException
from dynalab.expressions import compile_request, project
from dynalab.layout import item_key
from dynalab.values import Item, item_size, validate_key
from router.catalog import TableInfo
from router.items import read_item
from router.streams import write_flags
from router.params import (Checks, capacity_mode, consumed, field_bool, field_list, field_map,
                           field_str)

if TYPE_CHECKING:
    from router.app import Router

__all__ = ["batch_get_item", "batch_write_item", "MAX_GET_KEYS", "MAX_WRITES",
           "MAX_RESPONSE_BYTES"]

MAX_GET_KEYS = 100
MAX_WRITES = 25
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_DUPLICATES = "Provided list of item keys contains duplicates"
_ONE_REQUEST = ("Supplied AttributeValue has more than one datatypes set, must contain exactly "
                "one of the supported datatypes")
_SPEC_FIELDS = ("ProjectionExpression", "ExpressionAttributeNames", "AttributesToGet",
                "ConsistentRead")


# ------------------------------------------------------------------------------ BatchGetItem

@dataclass(frozen=True)
class _GetSpec:
    table: TableInfo
    keys: tuple[Item, ...]
    spec: dict[str, Any]         # the request's KeysAndAttributes minus Keys (for UnprocessedKeys)
    paths: tuple[Any, ...] | None
    consistent: bool


async def batch_get_item(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    checks = Checks()
    mode = capacity_mode(body, checks)
    request_items = _request_items(body, checks)
    for name, spec in request_items.items():
        checks.not_null(spec.get("Keys"), f"requestItems.{name}.member.keys")
        checks.length(spec.get("Keys"), f"requestItems.{name}.member.keys", 1, MAX_GET_KEYS)
    checks.done()
    if sum(len(spec.get("Keys") or ()) for spec in request_items.values()) > MAX_GET_KEYS:
        raise ValidationException("Too many items requested for the BatchGetItem call")
    specs = [await _get_spec(router, name, spec) for name, spec in request_items.items()]
    reads = [(spec, key) for spec in specs for key in spec.keys]
    results = await asyncio.gather(*(_try_read(router, spec, key) for spec, key in reads))
    return _get_response(specs, reads, results, mode)


async def _get_spec(router: Router, name: str, raw: dict[str, Any]) -> _GetSpec:
    table = await router.table_named(name)
    compiled = compile_request("BatchGetItem", raw)
    keys = tuple(validate_key(key, table.schema) for key in field_list(raw, "Keys") or ())
    encoded = {item_key(table.id, key, table.schema) for key in keys}
    if len(encoded) != len(keys):
        raise ValidationException(_DUPLICATES)
    spec = {f: raw[f] for f in _SPEC_FIELDS if raw.get(f) is not None}
    paths = compiled.projection.paths if compiled.projection is not None else None
    return _GetSpec(table, keys, spec, paths, bool(field_bool(raw, "ConsistentRead")))


async def _try_read(router: Router, spec: _GetSpec, key: Item) -> tuple[bool, Item | None]:
    """(read, item): read is False when the key's partition could not answer."""
    try:
        return True, await read_item(router, spec.table, key, spec.consistent)
    except ClientError:
        raise
    except DynalabError:
        return False, None


def _get_response(specs: list[_GetSpec], reads: list[tuple[_GetSpec, Item]],
                  results: list[tuple[bool, Item | None]], mode: str) -> dict[str, Any]:
    responses: dict[str, list[Item]] = {spec.table.name: [] for spec in specs}
    unprocessed: dict[str, dict[str, Any]] = {}
    units: dict[str, float] = defaultdict(float)
    size = 0
    for (spec, key), (done, item) in zip(reads, results):
        name = spec.table.name
        if not done or size > MAX_RESPONSE_BYTES:
            unprocessed.setdefault(name, {"Keys": [], **spec.spec})["Keys"].append(key)
            continue
        units[name] += read_units(item_size(item or {}), consistent=spec.consistent)
        if item is not None:
            size += item_size(item)
            responses[name].append(project(item, spec.paths) if spec.paths is not None else item)
    out: dict[str, Any] = {"Responses": responses, "UnprocessedKeys": unprocessed}
    _add_capacity(out, mode, units)
    return out


# ---------------------------------------------------------------------------- BatchWriteItem

@dataclass(frozen=True)
class _Write:
    table: TableInfo
    request: dict[str, Any]      # the WriteRequest as it goes back in UnprocessedItems
    prepared: writes.PreparedWrite


async def batch_write_item(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    checks = Checks()
    mode = capacity_mode(body, checks)
    checks.enum(field_str(body, "ReturnItemCollectionMetrics"), "returnItemCollectionMetrics",
                ("SIZE", "NONE"))
    request_items = _request_items(body, checks, as_lists=True)
    for name, requests in request_items.items():
        if not 1 <= len(requests) <= MAX_WRITES:
            # DynamoDB prints the whole map here (Java's toString); a summary keeps it readable.
            checks.violation(f"{{{name}=[{len(requests)} WriteRequests]}}", "requestItems",
                             "Map value must satisfy constraint: [Member must have length less "
                             f"than or equal to {MAX_WRITES}, Member must have length greater "
                             "than or equal to 1]")
    checks.done()
    if sum(len(requests) for requests in request_items.values()) > MAX_WRITES:
        raise ValidationException("Too many items requested for the BatchWriteItem call")
    batch = [w for name, requests in request_items.items()
             for w in await _prepare_table(router, name, requests)]
    groups: dict[str, list[_Write]] = defaultdict(list)
    for write in batch:
        partition = router.routing.partition_for(write.prepared.key, write.table.schema)
        groups[partition.id].append(write)
    outcomes = await asyncio.gather(*(_send_group(router, pid, group)
                                      for pid, group in groups.items()))
    unprocessed: dict[str, list[dict[str, Any]]] = {}
    units: dict[str, float] = defaultdict(float)
    for group, ok in zip(groups.values(), outcomes):
        for write in group:
            if ok:
                size = item_size(write.prepared.request.get("Item") or {})
                units[write.table.name] += write_units(size)
            else:
                unprocessed.setdefault(write.table.name, []).append(write.request)
    out: dict[str, Any] = {"UnprocessedItems": unprocessed}
    _add_capacity(out, mode, units)
    return out


async def _prepare_table(router: Router, name: str, requests: list[Any]) -> list[_Write]:
    table = await router.table_named(name)
    prepared: list[_Write] = []
    for raw in requests:
        raw = field_map({"r": raw}, "r") or {}
        put, delete = field_map(raw, "PutRequest"), field_map(raw, "DeleteRequest")
        if (put is None) == (delete is None):
            raise ValidationException(_ONE_REQUEST)
        if put is not None:
            write = writes.prepare("PutItem", {"Item": put.get("Item")}, table.schema)
            request = {"PutRequest": {"Item": write.request["Item"]}}
        else:
            assert delete is not None
            write = writes.prepare("DeleteItem", {"Key": delete.get("Key")}, table.schema)
            request = {"DeleteRequest": {"Key": write.key}}
        prepared.append(_Write(table, request, write))
    encoded = {item_key(table.id, w.prepared.key, table.schema) for w in prepared}
    if len(encoded) != len(prepared):
        raise ValidationException(_DUPLICATES)
    return prepared


async def _send_group(router: Router, partition_id: str, group: list[_Write]) -> bool:
    """One BatchWrite for a partition's share; False when the partition could not take it."""
    partition = next(p for p in router.routing.pmap.partitions if p.id == partition_id)
    body = {"writes": [{"table": w.table.id, "write": orjson.Fragment(writes.encode(w.prepared)),
                        **write_flags(w.table)} for w in group]}
    try:
        await router.routing.call_leader(partition, "BatchWrite", body, idempotent=True)
        return True
    except ClientError:
        raise
    except DynalabError:
        return False


# ------------------------------------------------------------------------------------ shared

def _request_items(body: dict[str, Any], checks: Checks, as_lists: bool = False) -> dict[str, Any]:
    """RequestItems checked for shape: table name -> KeysAndAttributes (or list of requests)."""
    items = field_map(body, "RequestItems")
    checks.not_null(items, "requestItems")
    if items is None:
        return {}
    checks.length(items, "requestItems", 1, None if as_lists else 100)
    out: dict[str, Any] = {}
    for name, value in items.items():
        checks.table_name(name, "requestItems.member.key")
        out[name] = (field_list({"v": value}, "v") or []) if as_lists else \
            (field_map({"v": value}, "v") or {})
    return out


def _add_capacity(out: dict[str, Any], mode: str, units: dict[str, float]) -> None:
    entries = [consumed(mode, name, total) for name, total in sorted(units.items())]
    if mode != "NONE":
        out["ConsumedCapacity"] = [e for e in entries if e is not None]
