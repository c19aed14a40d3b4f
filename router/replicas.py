"""Global tables, version 2019.11.21: UpdateTable ReplicaUpdates, and the router-to-router calls
that keep every region's catalog in line (docs/cluster.md, "Global tables: the details").

`Create {RegionName: B}` in region A:
  1. turn on a NEW_AND_OLD_IMAGES stream here if the table has none (as DynamoDB does), so every
     write from now on makes a change record;
  2. create the table in B through B's router (`DynalabCreateReplica`): same schema, listed as a
     replica of every region, B's status CREATING;
  3. tell any other existing replica region (`DynalabSetReplicas`);
  4. list B here with status CREATING and this region as its backfill source. A's replicator then
     ships the stream to B, copies the existing items (backfill) and sets B ACTIVE in both
     catalogs.
`Delete {RegionName: B}` drops B from the list here and in the other regions, then deletes B's
table (`DynalabDropReplica`). A DeleteTable of a global table first takes this region out of the
other regions' lists, so their replicators stop shipping to a table that is going away.

Messages marked "unverified" are worded in DynamoDB's style without a confirmed source.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import aiohttp
import orjson

from dynalab import errors
from dynalab.errors import (DynalabError, ResourceNotFoundException, ServerError, Unavailable,
                            ValidationException)
from dynalab.layout import item_key
from dynalab.values import validate_key
from router.catalog import ACTIVE, CREATING, TableInfo
from router.params import Checks, field_list, field_map, field_str

if TYPE_CHECKING:
    from router.app import Router

__all__ = ["update_replicas", "check_update", "describe_replicas", "before_delete",
           "REPLICA_OPERATIONS",
           "REPLICA_PREFIX", "SOURCE_PREFIX", "GLOBAL_TABLE_VERSION"]

log = logging.getLogger(__name__)

REPLICA_PREFIX = "replica:"          # settings["replica:REGION"] = CREATING | ACTIVE
SOURCE_PREFIX = "replica_source:"    # settings["replica_source:REGION"] = the backfilling region
GLOBAL_TABLE_VERSION = "2019.11.21"
_VIEW = "NEW_AND_OLD_IMAGES"
_INVALID = "One or more parameter values were invalid: "
_TARGET = "DynamoDB_20120810."
_REMOTE_TIMEOUT_S = 15.0


# ----------------------------------------------------------------------------- UpdateTable

async def update_replicas(router: Router, table: TableInfo,
                          body: dict[str, Any]) -> dict[str, Any]:
    """UpdateTable with ReplicaUpdates (control.update_table hands it over)."""
    others = [f for f in ("ProvisionedThroughput", "BillingMode", "StreamSpecification",
                          "SSESpecification", "DeletionProtectionEnabled")
              if body.get(f) is not None]
    if others:  # unverified wording
        raise ValidationException(f"{_INVALID}ReplicaUpdates cannot be combined with other "
                                  f"updates in one request: {', '.join(others)}")
    for action, region in _parse_updates(field_list(body, "ReplicaUpdates") or []):
        step = _create if action == "Create" else _delete
        table = await step(router, table, region)
    from router.control import describe
    return {"TableDescription": describe(router, table)}


def check_update(table: TableInfo, body: dict[str, Any]) -> None:
    """An UpdateTable without ReplicaUpdates must not take a global table's stream away: the
    replicators ship from it."""
    stream = field_map(body, "StreamSpecification")
    if table.replicas and stream is not None and stream.get("StreamEnabled") is False:
        raise ValidationException(  # unverified wording
            f"{_INVALID}Table {table.name} is a global table (replicas: "
            f"{', '.join(table.replicas)}); its stream cannot be disabled while it has replicas")


def _parse_updates(raw: list[Any]) -> list[tuple[str, str]]:
    updates: list[tuple[str, str]] = []
    checks = Checks()
    for i, element in enumerate(raw, 1):
        update = field_map({"u": element}, "u") or {}
        if field_map(update, "Update") is not None:  # unverified wording
            raise ValidationException("Replica Update actions are not supported by dynalab")
        actions = [a for a in ("Create", "Delete") if field_map(update, a) is not None]
        if len(actions) != 1:  # unverified wording
            raise ValidationException(f"{_INVALID}Each ReplicaUpdate must hold exactly one of "
                                      "Create or Delete")
        region = field_str(field_map(update, actions[0]) or {}, "RegionName")
        checks.not_null(region, f"replicaUpdates.{i}.member.{actions[0].lower()}.regionName")
        updates.append((actions[0], region or ""))
    checks.done()
    return updates


async def _create(router: Router, table: TableInfo, region: str) -> TableInfo:
    _check_region(router, region)
    if region in table.replicas:  # unverified wording
        raise ValidationException(
            f"Failed to create a the new replica of table with name: '{table.name}' because one "
            "or more replicas already existed as tables.")
    table = await _ensure_stream(router, table)
    current = list(table.replicas) or [router.region]
    wanted = [*current, region]
    statuses = {REPLICA_PREFIX + r: _status(table, r) for r in current}
    await _call(router, region, "DynalabCreateReplica", {
        "Table": _definition(table), "Replicas": wanted, "Source": router.region,
        "Settings": {**statuses, REPLICA_PREFIX + region: CREATING}})
    await _tell_others(router, table.name, current, wanted, {REPLICA_PREFIX + region: CREATING})
    return await _update(router, table, {"replicas": wanted, "settings": {
        REPLICA_PREFIX + router.region: _status(table, router.region),
        REPLICA_PREFIX + region: CREATING, SOURCE_PREFIX + region: router.region}})


async def _delete(router: Router, table: TableInfo, region: str) -> TableInfo:
    if region == router.region:  # unverified wording
        raise ValidationException(f"{_INVALID}The replica in {region}, where this request was "
                                  "made, cannot be deleted with ReplicaUpdates: use DeleteTable")
    if region not in table.replicas:  # unverified wording
        raise ValidationException(
            "Replica specified in the Replica Update or Replica Delete action of the request was "
            f"not found: {region}")
    remaining = [r for r in table.replicas if r != region]
    gone = {REPLICA_PREFIX + region: None, SOURCE_PREFIX + region: None}
    table = await _update(router, table, {"replicas": _listed(remaining, router.region),
                                          "settings": gone})
    await _tell_others(router, table.name, remaining, remaining, gone)
    await _call(router, region, "DynalabDropReplica", {"TableName": table.name})
    return table


async def before_delete(router: Router, table: TableInfo) -> None:
    """DeleteTable of a global table: the other regions stop listing this one first."""
    if not table.replicas:
        return
    remaining = [r for r in table.replicas if r != router.region]
    await _tell_others(router, table.name, table.replicas, remaining,
                       {REPLICA_PREFIX + router.region: None,
                        SOURCE_PREFIX + router.region: None})


def _check_region(router: Router, region: str) -> None:
    known = [r.name for r in router.topology.regions]
    if region not in known:  # unverified wording
        raise ValidationException(f"{_INVALID}Region {region} is not part of this cluster "
                                  f"(its regions: {', '.join(known)})")
    if region == router.region:  # unverified wording
        raise ValidationException(f"{_INVALID}Cannot add a replica in {region}: the table is "
                                  "already there")


async def _ensure_stream(router: Router, table: TableInfo) -> TableInfo:
    """Replicas need a NEW_AND_OLD_IMAGES stream; DynamoDB turns one on when there is none."""
    if table.stream_enabled:
        view = (table.stream or {}).get("StreamViewType")
        if view != _VIEW:  # unverified wording
            raise ValidationException(
                f"{_INVALID}A global table needs a stream of view type {_VIEW}; table "
                f"{table.name} has {view}. Disable its stream or change the view type first.")
        return table
    return await _update(router, table, {
        "stream": {"StreamEnabled": True, "StreamViewType": _VIEW},
        "settings": {"stream_label": _stream_label(), "stream_view_type": _VIEW}})


def _definition(table: TableInfo) -> dict[str, Any]:
    return {"name": table.name, "key_schema": list(table.key_schema),
            "attribute_definitions": list(table.attribute_definitions),
            "billing_mode": table.billing_mode, "provisioned": table.provisioned}


def _status(table: TableInfo, region: str) -> str:
    return str(table.settings.get(REPLICA_PREFIX + region) or ACTIVE)


def _listed(replicas: list[str], own: str) -> list[str]:
    """A table that is replicated nowhere else is regional again."""
    return [] if replicas in ([], [own]) else replicas


async def _tell_others(router: Router, name: str, regions: Any, replicas: list[str],
                       settings: dict[str, Any]) -> None:
    targets = [r for r in regions if r != router.region and r in replicas]
    await asyncio.gather(*(_call(router, r, "DynalabSetReplicas", {
        "TableName": name, "Replicas": replicas, "Settings": settings}) for r in targets))


def describe_replicas(table: TableInfo) -> dict[str, Any]:
    """The TableDescription fields of a global table (nothing for a regional one). Every
    replica is listed, this region's too."""
    if not table.replicas:
        return {}
    return {"GlobalTableVersion": GLOBAL_TABLE_VERSION,
            "Replicas": [{"RegionName": r, "ReplicaStatus": _status(table, r)}
                         for r in table.replicas]}


# ------------------------------------------------------------- router-to-router operations

async def create_replica(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    """DynalabCreateReplica: create this region's replica of another region's table."""
    definition = field_map(body, "Table") or {}
    replicas = [str(r) for r in field_list(body, "Replicas") or []]
    source = field_str(body, "Source") or ""
    name = str(definition.get("name") or "")
    if not name or router.region not in replicas or source not in replicas:
        raise ValidationException("DynalabCreateReplica needs a table, its replicas and source")
    existing = await router.catalog.lookup(name)
    if existing is not None:
        if source in existing.replicas and list(existing.key_schema) == definition["key_schema"]:
            return {"TableName": name}  # a repeated request: it is there already
        raise ValidationException(  # unverified wording
            f"Failed to create a the new replica of table with name: '{name}' because one or "
            "more replicas already existed as tables.")
    label = _stream_label()
    spec = {**definition, "created_ms": int(time.time() * 1000),
            "stream": {"StreamEnabled": True, "StreamViewType": _VIEW}, "replicas": replicas,
            "settings": {**(field_map(body, "Settings") or {}), "stream_label": label,
                         "stream_view_type": _VIEW}}
    answer = await router.routing.meta({"op": "CreateTable", "table": spec})
    table = router.catalog.install_entry(answer)
    if table is None:
        raise ServerError("the metadata group did not answer with the new table")
    router.spawn(_activate_later(router, table))
    return {"TableName": name}


async def set_replicas(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    """DynalabSetReplicas: replace the replica list (and replica settings) of a table here."""
    name = field_str(body, "TableName") or ""
    table = await router.catalog.lookup(name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    replicas = [str(r) for r in field_list(body, "Replicas") or []]
    await _update(router, table, {"replicas": _listed(replicas, router.region),
                                  "settings": field_map(body, "Settings") or {}})
    return {"TableName": name}


async def drop_replica(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    """DynalabDropReplica: this region's replica is no longer wanted: make it regional (its
    replicator stops shipping) and delete it."""
    from router.control import delete_table
    name = field_str(body, "TableName") or ""
    table = await router.catalog.lookup(name)
    if table is None:
        return {"TableName": name}  # already gone: a repeated request
    if table.replicas:
        await _update(router, table, {"replicas": []})
    await delete_table(router, {"TableName": name})
    return {"TableName": name}


async def item_version(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    """DynalabItemVersion {"TableName", "Key"}: the item (consistent read) with its hidden
    `Version` {"ts": [wall_ms, logical], "origin": region} (null: none kept), so a demo or a test
    can show why a write won. `{}` when there is no item (a tombstone is not shown)."""
    table = await router.active_table(body)
    key = validate_key(body.get("Key"), table.schema)
    storage_key = item_key(table.id, key, table.schema)
    answer = await router.routing.call_leader(
        router.routing.partition_for(key, table.schema), "Range",
        {"table": table.id, "low": _b64(storage_key), "high": _b64(storage_key + b"\x00"),
         "reverse": False, "limit": 1, "consistent": True, "with_meta": True}, idempotent=True)
    found = answer.get("Items") or []
    if not found:
        return {}
    return {"Item": found[0][1], "Version": found[0][2] if len(found[0]) > 2 else None}


REPLICA_OPERATIONS: dict[str, Callable[[Router, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "DynalabCreateReplica": create_replica,
    "DynalabSetReplicas": set_replicas,
    "DynalabDropReplica": drop_replica,
    "DynalabItemVersion": item_version,
}


# -------------------------------------------------------------------------------- plumbing

async def _update(router: Router, table: TableInfo, changes: dict[str, Any]) -> TableInfo:
    answer = await router.routing.meta({**changes, "op": "UpdateTable", "name": table.name,
                                        "id": table.id})
    updated = router.catalog.install_entry(answer)
    if updated is None:
        await router.catalog.refresh()
        updated = router.catalog.get(table.name)
    if updated is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {table.name} "
                                        "not found")
    return updated


async def _activate_later(router: Router, table: TableInfo) -> None:
    """CREATING -> ACTIVE as CreateTable does (housekeeping finishes it if this router dies)."""
    await asyncio.sleep(router.config.create_delay_ms / 1000)
    try:
        answer = await router.routing.meta({"op": "SetStatus", "name": table.name,
                                            "id": table.id, "status": ACTIVE})
        router.catalog.install_entry(answer)
    except DynalabError as exc:
        log.warning("activating replica %s failed (housekeeping will retry): %s", table.name,
                    exc.message)


async def _call(router: Router, region: str, operation: str,
                body: dict[str, Any]) -> dict[str, Any]:
    """One internal operation on another region's DynamoDB endpoint (its routers in turn)."""
    last = "no router"
    for spec in router.topology.region(region).routers:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(spec.host, spec.host)
        url = f"http://{host}:{spec.http_port}/"
        try:
            return await _post(url, region, operation, body)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            last = f"{url}: {exc!r}"
    raise Unavailable(f"the {region} region cannot be reached ({last})")


async def _post(url: str, region: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"X-Amz-Target": _TARGET + operation,
               "Content-Type": "application/x-amz-json-1.0",
               # Any well-formed SigV4 header is accepted (DESIGN.md: no authentication yet).
               "Authorization": f"AWS4-HMAC-SHA256 Credential=dynalab/20200101/{region}/dynamodb/"
                                "aws4_request, SignedHeaders=host;x-amz-target, Signature=0"}
    timeout = aiohttp.ClientTimeout(total=_REMOTE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(url, data=orjson.dumps(body), headers=headers) as response:
            raw = await response.read()
            answer = orjson.loads(raw) if raw else {}
            if response.status == 200:
                return dict(answer)
    raise _remote_error(region, answer)


def _remote_error(region: str, answer: dict[str, Any]) -> DynalabError:
    type_name = str(answer.get("__type", "")).rpartition("#")[2]
    message = f"{region}: {answer.get('message') or answer.get('Message') or type_name}"
    cls = getattr(errors, type_name, None)
    if isinstance(cls, type) and issubclass(cls, errors.ClientError):
        return cls(message)
    return Unavailable(message)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _stream_label() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
