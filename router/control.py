"""Control-plane operations: CreateTable, DescribeTable, ListTables, DeleteTable, UpdateTable.

The catalog lives in the `meta` Raft group; these operations validate as DynamoDB does, make
one Meta call, and put the answer straight into the router's catalog cache. Table lifecycles:

* CreateTable answers CREATING; the router sets ACTIVE (`SetStatus`) `create_delay_ms` later.
* DeleteTable answers DELETING; the router sends `DropTable` to every partition, then `SetStatus
  DELETED` removes the entry.

If the router that started either dies half-way, `housekeeping` (run on the cached catalog
about once a second, on every router) finishes the job once the table has been stuck long enough;
both steps are idempotent, so two routers doing it is harmless.

Messages marked "unverified" below are worded in DynamoDB's style without a confirmed source.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from dynalab.errors import (DynalabError, ResourceInUseException, ResourceNotFoundException,
                            ServerError, ValidationException)
from router.catalog import ACTIVE, CREATING, DELETED, DELETING, Catalog, TableInfo
from router.params import Checks, field_bool, field_int, field_list, field_map, field_str
from router.replicas import before_delete, check_update, describe_replicas, update_replicas

if TYPE_CHECKING:
    from router.app import Router

__all__ = ["create_table", "describe_table", "list_tables", "delete_table", "update_table",
           "describe", "housekeeping"]

log = logging.getLogger(__name__)

_INVALID = "One or more parameter values were invalid: "
_IN_USE = "Attempt to change a resource which is still in use: "
_BILLING_MODES = ("PROVISIONED", "PAY_PER_REQUEST")
_VIEW_TYPES = ("NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY")
_MAX_UNITS = 1_000_000_000_000
_NO_INDEXES = ("Secondary indexes are not supported by dynalab yet: remove "
               "LocalSecondaryIndexes and GlobalSecondaryIndexes")


# ------------------------------------------------------------------------------- CreateTable

async def create_table(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    name, spec = _check_create(body)
    known = router.catalog.get(name)
    if known is not None:
        raise ResourceInUseException(f"Table already exists: {name}")
    answer = await router.routing.meta({"op": "CreateTable", "table": spec})
    table = router.catalog.install_entry(answer) or _must_find(await _refreshed(router, name))
    router.spawn(_logged(_activate_later(router, table), f"activating {name}"))
    return {"TableDescription": describe(router, table)}


def _check_create(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Validate a CreateTable request; returns the name and the catalog entry to propose."""
    name = field_str(body, "TableName")
    definitions = _key_list(body, "AttributeDefinitions", "AttributeType")
    key_schema = _key_list(body, "KeySchema", "KeyType")
    billing = field_str(body, "BillingMode")
    throughput = _throughput(body)
    stream = _stream_spec(body)
    checks = Checks()
    checks.table_name(name)
    checks.not_null(definitions, "attributeDefinitions")
    checks.not_null(key_schema, "keySchema")
    for i, d in enumerate(definitions or (), 1):
        checks.not_null(d.get("AttributeName"), f"attributeDefinitions.{i}.member.attributeName")
        checks.not_null(d.get("AttributeType"), f"attributeDefinitions.{i}.member.attributeType")
        checks.enum(d.get("AttributeType"), f"attributeDefinitions.{i}.member.attributeType",
                    ("B", "N", "S"))
    checks.length(key_schema, "keySchema", 1, 2)
    for i, k in enumerate(key_schema or (), 1):
        checks.not_null(k.get("AttributeName"), f"keySchema.{i}.member.attributeName")
        checks.not_null(k.get("KeyType"), f"keySchema.{i}.member.keyType")
        checks.enum(k.get("KeyType"), f"keySchema.{i}.member.keyType", ("HASH", "RANGE"))
    checks.enum(billing, "billingMode", _BILLING_MODES)
    _check_throughput_constraints(checks, throughput)
    checks.done()
    assert name is not None and definitions is not None and key_schema is not None
    if any(body.get(f) is not None for f in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes")):
        raise ValidationException(_NO_INDEXES)
    billing = billing or "PROVISIONED"
    _check_billing(billing, throughput)
    _check_keys(key_schema, definitions)
    _check_stream(stream)
    settings: dict[str, Any] = {}
    if field_bool(body, "DeletionProtectionEnabled"):
        settings["deletion_protection"] = True
    if stream and stream.get("StreamEnabled"):
        settings["stream_label"] = _stream_label()
        settings["stream_view_type"] = stream["StreamViewType"]  # still known once disabled
    return name, {"name": name, "key_schema": key_schema, "attribute_definitions": definitions,
                  "created_ms": int(time.time() * 1000), "billing_mode": billing,
                  "provisioned": _units(throughput) if billing == "PROVISIONED" else None,
                  "stream": stream, "replicas": [], "settings": settings}


def _key_list(body: dict[str, Any], name: str, type_field: str) -> list[dict[str, Any]] | None:
    raw = field_list(body, name)
    if raw is None:
        return None
    out = []
    for element in raw:
        member = field_map({"m": element}, "m") or {}
        out.append({"AttributeName": field_str(member, "AttributeName"),
                    type_field: field_str(member, type_field)})
    return out


def _throughput(body: dict[str, Any]) -> dict[str, int | None] | None:
    raw = field_map(body, "ProvisionedThroughput")
    if raw is None:
        return None
    return {"ReadCapacityUnits": field_int(raw, "ReadCapacityUnits"),
            "WriteCapacityUnits": field_int(raw, "WriteCapacityUnits")}


def _check_throughput_constraints(checks: Checks, throughput: dict[str, int | None] | None) -> None:
    if throughput is None:
        return
    for field_name, path in (("WriteCapacityUnits", "writeCapacityUnits"),
                             ("ReadCapacityUnits", "readCapacityUnits")):
        checks.not_null(throughput[field_name], f"provisionedThroughput.{path}")
        checks.at_least(throughput[field_name], f"provisionedThroughput.{path}", 1)


def _check_billing(billing: str, throughput: dict[str, int | None] | None) -> None:
    if billing == "PAY_PER_REQUEST":
        if throughput is not None:
            raise ValidationException(f"{_INVALID}Neither ReadCapacityUnits nor WriteCapacityUnits "
                                      "can be specified when BillingMode is PAY_PER_REQUEST")
        return
    if throughput is None:
        raise ValidationException(f"{_INVALID}ReadCapacityUnits and WriteCapacityUnits must both "
                                  "be specified when BillingMode is PROVISIONED")
    for field_name in ("ReadCapacityUnits", "WriteCapacityUnits"):
        value = throughput[field_name]
        if value is not None and value > _MAX_UNITS:
            raise ValidationException(f"Given value {value} for {field_name} is out of bounds")


def _units(throughput: dict[str, int | None] | None) -> dict[str, int] | None:
    if throughput is None:
        return None
    return {k: int(v or 0) for k, v in throughput.items()}


def _check_keys(key_schema: list[dict[str, Any]], definitions: list[dict[str, Any]]) -> None:
    defined = [d["AttributeName"] for d in definitions]
    keys = [k["AttributeName"] for k in key_schema]
    if len(keys) > len(defined):
        raise ValidationException("Invalid KeySchema: Some index key attribute have no definition")
    if any(k not in defined for k in keys):
        raise ValidationException(
            f"{_INVALID}Some index key attributes are not defined in AttributeDefinitions. "
            f"Keys: [{', '.join(keys)}], AttributeDefinitions: [{', '.join(defined)}]")
    if len(keys) == 2 and keys[0] == keys[1]:
        raise ValidationException(
            "Both the Hash Key and the Range Key element in the KeySchema have the same name")
    if key_schema[0]["KeyType"] != "HASH":
        raise ValidationException(
            "Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    if len(key_schema) == 2 and key_schema[1]["KeyType"] != "RANGE":
        raise ValidationException(
            "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type")
    if len(keys) != len(defined):
        raise ValidationException(f"{_INVALID}Number of attributes in KeySchema does not exactly "
                                  "match number of attributes defined in AttributeDefinitions")


def _stream_spec(body: dict[str, Any]) -> dict[str, Any] | None:
    raw = field_map(body, "StreamSpecification")
    if raw is None:
        return None
    spec: dict[str, Any] = {"StreamEnabled": field_bool(raw, "StreamEnabled")}
    view = field_str(raw, "StreamViewType")
    if view is not None:
        spec["StreamViewType"] = view
    return spec


def _check_stream(stream: dict[str, Any] | None) -> None:
    if stream is None:
        return
    checks = Checks()
    checks.not_null(stream["StreamEnabled"], "streamSpecification.streamEnabled")
    checks.enum(stream.get("StreamViewType"), "streamSpecification.streamViewType", _VIEW_TYPES)
    checks.done()
    if stream["StreamEnabled"] and "StreamViewType" not in stream:
        raise ValidationException(
            f"{_INVALID}If stream is being enabled then UpdateViewType is required")
    if not stream["StreamEnabled"] and "StreamViewType" in stream:
        # unverified wording
        raise ValidationException(
            f"{_INVALID}If stream is being disabled then StreamViewType must not be specified")


def _stream_label() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


async def _logged(job: Awaitable[None], what: str) -> None:
    """A lifecycle step in the background: a failure is logged, and housekeeping (on any
    router) finishes the step later."""
    try:
        await job
    except DynalabError as exc:
        log.warning("%s failed (housekeeping will retry): %s", what, exc.message)


async def _activate_later(router: Router, table: TableInfo) -> None:
    await asyncio.sleep(router.config.create_delay_ms / 1000)
    await _set_status(router, table, ACTIVE)


async def _set_status(router: Router, table: TableInfo, status: str) -> None:
    # The id makes the meta group refuse the change if the name now belongs to a newer table.
    answer = await router.routing.meta({"op": "SetStatus", "name": table.name, "id": table.id,
                                        "status": status})
    if status == DELETED:
        router.catalog.forget(table.name)
    elif router.catalog.install_entry(answer) is None:
        await router.catalog.refresh()


# ----------------------------------------------------------------------------- DescribeTable

async def describe_table(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    name = _checked_name(body)
    table = await router.catalog.lookup(name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    return {"Table": describe(router, table)}


def describe(router: Router, table: TableInfo) -> dict[str, Any]:
    """DynamoDB's TableDescription of a catalog entry."""
    created_s = table.created_ms / 1000
    provisioned = table.provisioned or {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
    out: dict[str, Any] = {
        "AttributeDefinitions": list(table.attribute_definitions),
        "TableName": table.name,
        "KeySchema": list(table.key_schema),
        "TableStatus": table.status,
        "CreationDateTime": created_s,
        "ProvisionedThroughput": {"NumberOfDecreasesToday": 0, **provisioned},
        "TableSizeBytes": 0,
        "ItemCount": 0,
        "TableArn": router.table_arn(table.name),
        "TableId": _table_uuid(table.id),
        "DeletionProtectionEnabled": bool(table.settings.get("deletion_protection")),
    }
    if table.billing_mode == "PAY_PER_REQUEST":
        out["BillingModeSummary"] = {
            "BillingMode": "PAY_PER_REQUEST",
            "LastUpdateToPayPerRequestDateTime":
                table.settings.get("pay_per_request_since_ms", table.created_ms) / 1000}
    else:
        out["BillingModeSummary"] = {"BillingMode": "PROVISIONED"}
    if table.stream_enabled and table.stream is not None:
        out["StreamSpecification"] = dict(table.stream)
    label = table.settings.get("stream_label")
    if label:  # DynamoDB keeps showing the latest stream after it is disabled
        out["LatestStreamLabel"] = label
        out["LatestStreamArn"] = f"{router.table_arn(table.name)}/stream/{label}"
    out.update(describe_replicas(table))
    return out


def _table_uuid(table_id: str) -> str:
    """DynamoDB's TableId is a UUID; ours is derived from the catalog id, so it is stable."""
    return str(uuid.UUID(bytes=hashlib.blake2b(table_id.encode(), digest_size=16).digest()))


def _checked_name(body: dict[str, Any]) -> str:
    name = field_str(body, "TableName")
    checks = Checks()
    checks.table_name(name)
    checks.done()
    assert name is not None
    return name


async def _refreshed(router: Router, name: str) -> TableInfo | None:
    await router.catalog.refresh()
    return router.catalog.get(name)


def _must_find(table: TableInfo | None) -> TableInfo:
    if table is None:  # the meta group answered for a table its catalog does not hold: a bug
        raise ServerError("the metadata group lost a table it just answered for")
    return table


# -------------------------------------------------------------------------------- ListTables

async def list_tables(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    start = field_str(body, "ExclusiveStartTableName")
    limit = field_int(body, "Limit")
    checks = Checks()
    checks.table_name(start, "exclusiveStartTableName", required=False)
    checks.at_least(limit, "limit", 1)
    checks.at_most(limit, "limit", 100)
    checks.done()
    try:  # show tables another router just created; else the cache is at most ~1 s old
        await router.catalog.refresh()
    except DynalabError as exc:
        log.warning("ListTables from the cached catalog: %s", exc.message)
    names = [n for n in router.catalog.names() if start is None or n > start]
    page = names[:limit or 100]
    out: dict[str, Any] = {"TableNames": page}
    if len(names) > len(page):
        out["LastEvaluatedTableName"] = page[-1]
    return out


# ------------------------------------------------------------------------------- DeleteTable

async def delete_table(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    name = _checked_name(body)
    table = await router.catalog.lookup(name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    _check_changeable(table)
    if table.settings.get("deletion_protection"):
        raise ValidationException("Resource cannot be deleted as it is currently protected against "
                                  "deletion. Disable deletion protection first.")
    await before_delete(router, table)  # the other regions stop replicating into it first
    answer = await router.routing.meta({"op": "DeleteTable", "name": name, "id": table.id})
    deleting = router.catalog.install_entry(answer) or table
    router.spawn(_logged(_drop(router, deleting), f"dropping {name}"))
    return {"TableDescription": describe(router, deleting)}


def _check_changeable(table: TableInfo) -> None:
    if table.status == CREATING:
        raise ResourceInUseException(
            f"{_IN_USE}Table is being created: {table.name}")
    if table.status == DELETING:  # unverified wording
        raise ResourceInUseException(
            f"{_IN_USE}Table is being deleted: {table.name}")


async def _drop(router: Router, table: TableInfo) -> None:
    """Delete the table's items on every partition, then its catalog entry. A partition that
    stays unreachable leaves the table DELETING for housekeeping to finish later."""
    routing = router.routing
    await asyncio.gather(*(routing.call_leader(p, "DropTable", {"table": table.id}, idempotent=True)
                           for p in routing.pmap.partitions))
    await _set_status(router, table, DELETED)


# ------------------------------------------------------------------------------- UpdateTable

async def update_table(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    name = _checked_update_name(body)
    if body.get("GlobalSecondaryIndexUpdates"):
        raise ValidationException(_NO_INDEXES)
    table = await router.catalog.lookup(name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    _check_changeable(table)
    if body.get("ReplicaUpdates"):
        return await update_replicas(router, table, body)
    check_update(table, body)
    changes = _table_changes(router, table, body)
    # The changed catalog fields go at the top level of the command (node/meta.py merges
    # "settings" key by key and sets every other field).
    answer = await router.routing.meta({**changes, "op": "UpdateTable", "name": name,
                                        "id": table.id})
    updated = router.catalog.install_entry(answer) or _must_find(await _refreshed(router, name))
    return {"TableDescription": describe(router, updated)}


def _checked_update_name(body: dict[str, Any]) -> str:
    name = field_str(body, "TableName")
    billing = field_str(body, "BillingMode")
    checks = Checks()
    checks.table_name(name)
    checks.enum(billing, "billingMode", _BILLING_MODES)
    _check_throughput_constraints(checks, _throughput(body))
    checks.done()
    wanted = ("ProvisionedThroughput", "BillingMode", "StreamSpecification",
              "GlobalSecondaryIndexUpdates", "SSESpecification", "ReplicaUpdates",
              "DeletionProtectionEnabled")
    if all(body.get(f) in (None, []) for f in wanted):
        raise ValidationException(
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, "
            "GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required")
    assert name is not None
    return name


def _table_changes(router: Router, table: TableInfo, body: dict[str, Any]) -> dict[str, Any]:
    """The catalog fields an UpdateTable request changes (validated against the table)."""
    changes: dict[str, Any] = {}
    settings = dict(table.settings)
    _billing_changes(table, body, changes, settings)
    stream = _stream_spec(body)
    if stream is not None:
        _check_stream(stream)
        _check_stream_change(table, stream)
        changes["stream"] = stream
        if stream["StreamEnabled"]:
            settings["stream_label"] = _stream_label()
            settings["stream_view_type"] = stream["StreamViewType"]  # still known once disabled
    if body.get("ReplicaUpdates") is not None:
        changes["replicas"] = _replicas(router, table, field_list(body, "ReplicaUpdates") or [])
    protection = field_bool(body, "DeletionProtectionEnabled")
    if protection is not None:
        settings["deletion_protection"] = protection
    if settings != dict(table.settings):
        changes["settings"] = settings
    return changes


def _billing_changes(table: TableInfo, body: dict[str, Any], changes: dict[str, Any],
                     settings: dict[str, Any]) -> None:
    billing = field_str(body, "BillingMode") or table.billing_mode
    throughput = _throughput(body)
    if billing == "PAY_PER_REQUEST":
        if throughput is not None:
            _check_billing(billing, throughput)
        if table.billing_mode != billing:
            changes.update(billing_mode=billing, provisioned=None)
            settings["pay_per_request_since_ms"] = int(time.time() * 1000)
        return
    if throughput is None:
        if table.billing_mode != billing:  # unverified wording
            raise ValidationException(f"{_INVALID}ProvisionedThroughput must be specified when "
                                      "BillingMode is PROVISIONED")
        return
    _check_billing(billing, throughput)
    units = _units(throughput)
    if units == table.provisioned and table.billing_mode == billing:
        current = table.provisioned or {}
        raise ValidationException(
            "The provisioned throughput for the table will not change. The requested value equals "
            "the current value. Current ReadCapacityUnits provisioned for the table: "
            f"{current.get('ReadCapacityUnits')}. Requested ReadCapacityUnits: "
            f"{throughput['ReadCapacityUnits']}. Current WriteCapacityUnits provisioned for the "
            f"table: {current.get('WriteCapacityUnits')}. Requested WriteCapacityUnits: "
            f"{throughput['WriteCapacityUnits']}. Refer to the Amazon DynamoDB Developer Guide for "
            "current limits and how to request higher limits.")
    changes.update(billing_mode=billing, provisioned=units)


def _check_stream_change(table: TableInfo, stream: dict[str, Any]) -> None:
    if stream["StreamEnabled"] and table.stream_enabled:
        raise ValidationException(f"Table already has an enabled stream: TableName: {table.name}")
    if not stream["StreamEnabled"] and not table.stream_enabled:
        raise ValidationException(f"Table has no stream to disable: TableName: {table.name}")


def _replicas(router: Router, table: TableInfo, updates: list[Any]) -> list[str]:
    """Apply ReplicaUpdates ({"Create": {"RegionName"}} / {"Delete": {...}}) to the replica list."""
    replicas = list(table.replicas)
    for update in updates:
        update = field_map({"u": update}, "u") or {}
        for action in ("Create", "Delete"):
            spec = field_map(update, action)
            if spec is None:
                continue
            region = field_str(spec, "RegionName")
            checks = Checks()
            checks.not_null(region, f"replicaUpdates.{action.lower()}.regionName")
            checks.done()
            assert region is not None
            if action == "Create" and region not in replicas:
                replicas.append(region)
            elif action == "Delete":
                if region not in replicas:  # unverified wording
                    raise ValidationException(
                        "Replica specified in the Replica Update or Replica Delete action of the "
                        f"request was not found: {region}")
                replicas.remove(region)
    return replicas


# ------------------------------------------------------------------------------- housekeeping

def housekeeping(router: Router) -> Callable[[Catalog], Awaitable[None]]:
    """A check of the catalog (the router runs it every housekeeping_ms) that finishes table
    lifecycles whose router went away: a table seen CREATING (DELETING) for longer than the
    configured time is set ACTIVE (dropped)."""
    first_seen: dict[tuple[str, str, str], float] = {}

    async def check(catalog: Catalog) -> None:
        now = asyncio.get_running_loop().time()
        current = {(t.name, t.id, t.status) for t in catalog.tables()}
        for key in list(first_seen):
            if key not in current:
                del first_seen[key]
        for table in catalog.tables():
            key = (table.name, table.id, table.status)
            seen = first_seen.setdefault(key, now)
            await _finish_stuck(router, table, (now - seen) * 1000)

    return check


async def _finish_stuck(router: Router, table: TableInfo, stuck_ms: float) -> None:
    try:
        if table.status == CREATING and stuck_ms > router.config.stuck_creating_ms:
            log.info("finishing CreateTable of %s", table.name)
            await _set_status(router, table, ACTIVE)
        elif table.status == DELETING and stuck_ms > router.config.stuck_deleting_ms:
            log.info("finishing DeleteTable of %s", table.name)
            await _drop(router, table)
    except DynalabError as exc:
        log.warning("housekeeping of %s failed: %s", table.name, exc.message)
