"""The router's cache of the table catalog held by the `meta` group.

Fetched with `Meta Catalog` at start, every ~1 s in the background, after each control-plane
call, and once on a table name it does not know (before answering ResourceNotFoundException), so
the data path never waits on metadata. Concurrent misses share one fetch.

Catalog entries (docs/cluster.md, "Metadata") keep DynamoDB's wire shapes where there is one:
`key_schema` = [{"AttributeName", "KeyType"}], `attribute_definitions` =
[{"AttributeName", "AttributeType"}], `provisioned` = {"ReadCapacityUnits", "WriteCapacityUnits"}
(absent for on-demand tables), `stream` = the StreamSpecification as the client gave it.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Awaitable, Callable, Mapping

from dynalab.errors import DynalabError
from dynalab.values import KeySchema
from router.routing import Routing

__all__ = ["TableInfo", "Catalog", "ACTIVE", "CREATING", "DELETING", "UPDATING", "DELETED"]

log = logging.getLogger(__name__)

ACTIVE, CREATING, DELETING, UPDATING = "ACTIVE", "CREATING", "DELETING", "UPDATING"
DELETED = "DELETED"  # SetStatus DELETED removes the entry; never seen in a catalog


@dataclass(frozen=True)
class TableInfo:
    """One catalog entry, as the router uses it."""

    name: str
    id: str
    status: str
    key_schema: tuple[Mapping[str, str], ...]
    attribute_definitions: tuple[Mapping[str, str], ...]
    created_ms: int
    billing_mode: str = "PROVISIONED"
    provisioned: Mapping[str, int] | None = None
    stream: Mapping[str, Any] | None = None
    replicas: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> TableInfo:
        return cls(name=entry["name"], id=entry["id"], status=entry["status"],
                   key_schema=tuple(entry["key_schema"]),
                   attribute_definitions=tuple(entry["attribute_definitions"]),
                   created_ms=int(entry.get("created_ms") or 0),
                   billing_mode=entry.get("billing_mode") or "PROVISIONED",
                   provisioned=entry.get("provisioned"), stream=entry.get("stream"),
                   replicas=tuple(entry.get("replicas") or ()),
                   settings=entry.get("settings") or {})

    @cached_property
    def schema(self) -> KeySchema:
        types = {d["AttributeName"]: d["AttributeType"] for d in self.attribute_definitions}
        parts = {k["KeyType"]: k["AttributeName"] for k in self.key_schema}
        hash_name, range_name = parts["HASH"], parts.get("RANGE")
        return KeySchema(hash_name, types[hash_name], range_name,
                         types[range_name] if range_name is not None else None)

    @property
    def stream_enabled(self) -> bool:
        return bool(self.stream and self.stream.get("StreamEnabled"))


class Catalog:
    """Name -> TableInfo, refreshed from the meta group."""

    def __init__(self, routing: Routing, refresh_interval_ms: int = 1000) -> None:
        self._routing = routing
        self._interval_s = refresh_interval_ms / 1000
        self._tables: dict[str, TableInfo] = {}
        self._epoch = -1
        self._inflight: asyncio.Future[None] | None = None
        self._listeners: list[Callable[[Catalog], Awaitable[None]]] = []

    def get(self, name: str) -> TableInfo | None:
        return self._tables.get(name)

    def names(self) -> list[str]:
        return sorted(self._tables)

    def tables(self) -> list[TableInfo]:
        return [self._tables[name] for name in self.names()]

    async def lookup(self, name: str) -> TableInfo | None:
        """The table, refreshing once if it is not known here yet."""
        table = self._tables.get(name)
        if table is None:
            await self.refresh()
            table = self._tables.get(name)
        return table

    async def refresh(self) -> None:
        """Fetch the catalog; callers arriving while a fetch is running share it."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
        inflight = self._inflight
        try:
            await asyncio.shield(inflight)
        finally:
            if self._inflight is inflight and inflight.done():
                self._inflight = None

    def install_entry(self, answer: Mapping[str, Any]) -> TableInfo | None:
        """Take a table entry a control-plane call answered (`{"table": entry}` or the entry)."""
        entry = answer.get("table", answer)
        if not isinstance(entry, Mapping) or "name" not in entry:
            return None
        if "epoch" in answer:  # a Catalog fetched before this change must not undo it
            self._epoch = max(self._epoch, int(answer["epoch"]))
        table = TableInfo.from_entry(entry)
        if table.status == DELETED:
            self._tables.pop(table.name, None)
        else:
            self._tables[table.name] = table
        return table

    def forget(self, name: str) -> None:
        self._tables.pop(name, None)

    def on_refresh(self, listener: Callable[[Catalog], Awaitable[None]]) -> None:
        """Run `listener` after every background refresh (table lifecycle housekeeping)."""
        self._listeners.append(listener)

    async def run(self) -> None:
        """The background loop: refresh every interval until cancelled; errors are logged."""
        while True:
            try:
                await self.refresh()
                for listener in self._listeners:
                    await listener(self)
            except DynalabError as exc:
                log.warning("catalog refresh failed: %s", exc.message)
            except Exception:  # noqa: BLE001 - a bad entry must not stop the refresh loop
                log.exception("catalog refresh failed")
            await asyncio.sleep(self._interval_s)

    async def _fetch(self) -> None:
        answer = await self._routing.meta({"op": "Catalog"})
        epoch = int(answer.get("epoch", self._epoch))
        if epoch < self._epoch:
            return  # an older answer overtaken by a newer one
        raw = answer.get("tables") or {}
        entries = raw.values() if isinstance(raw, Mapping) else raw
        tables = (TableInfo.from_entry(entry) for entry in entries)
        self._tables = {t.name: t for t in tables if t.status != DELETED}
        self._epoch = epoch
