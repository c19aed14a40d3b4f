"""The metadata state machine of group `meta`: the region's table catalog (docs/cluster.md).

A log entry is the Execute `Meta` body (JSON), with `now_ms` stamped by the proposing leader so
that every replica stores the same `created_ms`:

  {"op": "CreateTable", "name": n, <definition: key_schema, attribute_definitions, billing_mode,
                                     provisioned, stream, replicas, settings, ...>}
      (the definition may also come nested as {"table": {...}}) -> entry with status CREATING and
      id = blake2b(name, log index) as 16 hex digits; ResourceInUseException if the name is taken
  {"op": "SetStatus", "name": n, "status": s, ["id": id]}   status DELETED removes the entry
  {"op": "DeleteTable", "name": n, ["id": id]}               -> status DELETING
  {"op": "UpdateTable", "name": n, ["id": id], <fields to set>}  "settings" is merged key by key

Each accepted change increments `epoch`. A missing table (or a different `id` than asked for:
the name was dropped and created again) is ResourceNotFoundException. Answers are
{"table": entry, "epoch": n}; `Catalog` (a read) answers {"epoch": n, "tables": {name: entry}}.

The catalog is small: it lives in memory and each apply call writes it whole, together with the
group's applied index, in one WriteBatch. Listeners (`on_change`: the service's Catalog watches)
are told after every apply or restore that moved the epoch.
"""
from __future__ import annotations

import copy
import hashlib
import logging
from typing import Any, Callable, Mapping, Sequence

import orjson

from dynalab.errors import (
    DynalabError,
    ResourceInUseException,
    ResourceNotFoundException,
    ServerError,
    ValidationException,
)
from dynalab.listeners import Listeners
from dynalab.ring import META_GROUP
from node.statedb import StateDB
from replication.types import Entry, Snapshot

__all__ = ["MetaMachine", "META_WRITES", "STATUSES", "stamp_command"]

log = logging.getLogger(__name__)

META_WRITES = ("CreateTable", "SetStatus", "DeleteTable", "UpdateTable")
STATUSES = ("CREATING", "ACTIVE", "UPDATING", "DELETING", "DELETED")
_CATALOG_KEY = b"catalog"
_FIXED = frozenset({"op", "id", "name", "created_ms", "now_ms", "table"})
_BUSY = ("CREATING", "UPDATING", "DELETING")

Catalog = dict[str, Any]  # {"epoch": int, "tables": {name: entry}}


def stamp_command(body: Mapping[str, Any], now_ms: int) -> bytes:
    """The log entry for a Meta write: the body, with the leader's clock for created_ms."""
    if body.get("op") not in META_WRITES:
        raise ValidationException(f"unknown Meta operation {body.get('op')!r}")
    return orjson.dumps({**body, "now_ms": now_ms})


class MetaMachine:
    """StateMachine of the `meta` group (the driver passes group == META_GROUP)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        raw = db.get_meta(_CATALOG_KEY)
        self._catalog: Catalog = orjson.loads(raw) if raw else _empty()
        self._listeners: Listeners[[]] = Listeners("catalog listener")

    def catalog(self) -> Catalog:
        """The applied catalog (serve it after a read_index for a linearizable answer)."""
        return self._catalog

    def epoch(self) -> int:
        """The applied catalog's epoch."""
        return int(self._catalog["epoch"])

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever the applied epoch moves (from the driver's turn, which
        applies: it must only note the change)."""
        self._listeners.add(listener)

    def applied(self) -> int:
        return self._db.applied(META_GROUP)

    def digest(self) -> str:
        return hashlib.sha256(orjson.dumps(self._catalog, option=orjson.OPT_SORT_KEYS)).hexdigest()

    # -- StateMachine

    def apply(self, group: str, entries: Sequence[Entry]) -> list[object]:
        applied = self._db.applied(group)
        epoch = self.epoch()
        results: list[object] = []
        last = applied
        for entry in entries:
            if entry.index <= applied:  # applied before a restart
                results.append(None)
                continue
            results.append(self._apply_entry(entry))
            last = entry.index
        if last > applied:
            self._persist(last)
        self._tell_if_moved(epoch)
        return results

    def snapshot(self, group: str) -> bytes:
        return orjson.dumps(self._catalog)

    def restore(self, group: str, snapshot: Snapshot) -> None:
        if self._db.applied(group) >= snapshot.meta.index:
            return  # already past it (add_group after a restart)
        epoch = self.epoch()
        self._catalog = orjson.loads(snapshot.data) if snapshot.data else _empty()
        self._persist(snapshot.meta.index)
        self._tell_if_moved(epoch)

    def _tell_if_moved(self, epoch_before: int) -> None:
        if self.epoch() != epoch_before:
            self._listeners.tell()

    # -- commands

    def _apply_entry(self, entry: Entry) -> object:
        try:
            command = orjson.loads(entry.data)
            if not isinstance(command, dict):
                raise ValidationException("malformed Meta command")
            handler = _HANDLERS.get(command.get("op", ""))
            if handler is None:
                raise ValidationException(f"unknown Meta operation {command.get('op')!r}")
            tables: dict[str, Any] = self._catalog["tables"]
            changed = handler(tables, command, entry.index)  # validates before changing
        except DynalabError as exc:
            return exc
        except Exception as exc:  # deterministic everywhere: a result, not a crash
            log.exception("meta entry %d failed", entry.index)
            return ServerError(f"applying meta entry {entry.index} failed: {exc!r}")
        self._catalog["epoch"] += 1
        return {"table": changed, "epoch": self._catalog["epoch"]}

    def _persist(self, index: int) -> None:
        wb = self._db.batch()
        wb.put(_CATALOG_KEY, orjson.dumps(self._catalog), self._db.meta_h)
        self._db.stage_applied(wb, META_GROUP, index)
        self._db.write(wb)


def _empty() -> Catalog:
    return {"epoch": 0, "tables": {}}


def _name(command: Mapping[str, Any]) -> str:
    name = command.get("name")
    table = command.get("table")
    if name is None and isinstance(table, Mapping):
        name = table.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationException("a table name is required")
    return name


def _existing(tables: Mapping[str, Any], command: Mapping[str, Any]) -> dict[str, Any]:
    name = _name(command)
    entry = tables.get(name)
    wanted_id = command.get("id")
    if entry is None or (wanted_id is not None and entry["id"] != wanted_id):
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    return copy.deepcopy(entry)


def _create(tables: dict[str, Any], command: Mapping[str, Any], index: int) -> dict[str, Any]:
    name = _name(command)
    if name in tables:
        raise ResourceInUseException(f"Table already exists: {name}")
    nested = command.get("table")
    definition = nested if isinstance(nested, Mapping) else command
    entry = {k: v for k, v in definition.items() if k not in _FIXED}
    digest = hashlib.blake2b(f"{name}\x00{index}".encode(), digest_size=8).hexdigest()
    entry.update(id=digest, name=name, status="CREATING", created_ms=int(command["now_ms"]))
    entry.setdefault("settings", {})
    tables[name] = entry
    return copy.deepcopy(entry)


def _set_status(tables: dict[str, Any], command: Mapping[str, Any], index: int) -> dict[str, Any]:
    entry = _existing(tables, command)
    status = command.get("status")
    if status not in STATUSES:
        raise ValidationException(f"unknown table status {status!r}")
    entry["status"] = status
    if status == "DELETED":
        del tables[entry["name"]]
    else:
        tables[entry["name"]] = entry
    return copy.deepcopy(entry)


def _delete(tables: dict[str, Any], command: Mapping[str, Any], index: int) -> dict[str, Any]:
    entry = _existing(tables, command)
    if entry["status"] in _BUSY:
        doing = {"CREATING": "created", "UPDATING": "updated", "DELETING": "deleted"}
        raise ResourceInUseException(f"Attempt to change a resource which is still in use: "
                                     f"Table is being {doing[entry['status']]}: {entry['name']}")
    entry["status"] = "DELETING"
    tables[entry["name"]] = entry
    return copy.deepcopy(entry)


def _update(tables: dict[str, Any], command: Mapping[str, Any], index: int) -> dict[str, Any]:
    entry = _existing(tables, command)
    for field, value in command.items():
        if field in _FIXED:
            continue
        if field == "status" and (value not in STATUSES or value == "DELETED"):
            raise ValidationException(f"UpdateTable cannot set status {value!r}")
        if field == "settings" and isinstance(value, Mapping):
            entry["settings"] = {**entry.get("settings", {}), **value}
        else:
            entry[field] = value
    tables[entry["name"]] = entry
    return copy.deepcopy(entry)


_HANDLERS: dict[str, Callable[[dict[str, Any], Mapping[str, Any], int], dict[str, Any]]] = {
    "CreateTable": _create,
    "SetStatus": _set_status,
    "DeleteTable": _delete,
    "UpdateTable": _update,
}
