"""The router's cache of the table catalog held by the `meta` group.

Fetched with `Meta Catalog` at start, after each control-plane call, and once on a table name it
does not know (before answering ResourceNotFoundException), so the data path never waits on
metadata. Concurrent misses share one fetch. In the background, `run` keeps a *watch* on the
meta leader (`Catalog` with `after_epoch`, a long poll): the leader answers as soon as a change
is applied, else after `WatchConfig.wait_ms`; so the cache follows every change one round trip
after it commits, while an idle catalog costs one call per `wait_ms` and lets the meta group
quiesce (a poll every second kept its lease, and its heartbeats, alive).

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

__all__ = ["TableInfo", "Catalog", "WatchConfig", "ACTIVE", "CREATING", "DELETING", "UPDATING",
           "DELETED"]

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


@dataclass(frozen=True)
class WatchConfig:
    """The background catalog watch (docs/cluster.md, "Metadata")."""

    wait_ms: int = 25_000  # the meta leader answers an unchanged catalog after this long
    # The call's deadline (and its one attempt's timeout) is wait_ms plus this: room for the
    # leader's linearizable read when the wait ends (up to its read_timeout_ms, 3 s) and the
    # round trip. A leader that is cut off without its stream breaking is given up on then.
    margin_ms: int = 5_000
    # Unchanged answers are never asked for more often than this: a node that does not hold
    # watches (an older version) answers at once, and is then polled as it was before.
    min_interval_ms: int = 1_000
    backoff_ms: tuple[int, int] = (100, 5_000)  # between failed watches, doubling


class Catalog:
    """Name -> TableInfo, refreshed from the meta group."""

    def __init__(self, routing: Routing, watch: WatchConfig | None = None) -> None:
        self._routing = routing
        self._watch = watch or WatchConfig()
        self._tables: dict[str, TableInfo] = {}
        self._epoch = -1  # the newest epoch seen (catalogs and control-plane answers)
        self._fetched_epoch = -1  # the newest whole catalog taken: what the watch waits past
        self._fetched = False
        self._inflight: asyncio.Future[None] | None = None
        self._listeners: list[Callable[[Catalog], Awaitable[None]]] = []

    @property
    def fetched(self) -> bool:
        """Has a whole catalog been taken (not only control-plane answers)?"""
        return self._fetched

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
        """Run `listener` after every answer of the background watch (a change, or the end of
        a wait with none)."""
        self._listeners.append(listener)

    async def run(self) -> None:
        """The background watch, until cancelled. A failed call is logged and retried after a
        bounded backoff; so once the meta group has a leader again, the cache is behind it for
        at most about wait_ms + margin_ms (a call stuck on a leader that was cut off)."""
        loop = asyncio.get_running_loop()
        backoff_ms = self._watch.backoff_ms[0]
        while True:
            started = loop.time()
            try:
                changed = await self._watch_once()
                for listener in self._listeners:
                    await listener(self)
            except Exception as exc:  # noqa: BLE001 - a bad entry must not stop the watch
                if isinstance(exc, DynalabError):
                    log.warning("catalog watch failed: %s", exc.message)
                else:
                    log.exception("catalog watch failed")
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self._watch.backoff_ms[1])
                continue
            backoff_ms = self._watch.backoff_ms[0]
            if not changed:
                elapsed_s = loop.time() - started
                await asyncio.sleep(max(0.0, self._watch.min_interval_ms / 1000 - elapsed_s))

    async def _watch_once(self) -> bool:
        """One watch call: the catalog once it is newer than the last one taken (or once the
        leader's wait ends). True if it was newer."""
        after = self._fetched_epoch
        hold_ms = self._watch.wait_ms + self._watch.margin_ms
        answer = await self._routing.call_leader(
            self._routing.meta_group, "Meta",
            {"op": "Catalog", "after_epoch": after, "wait_ms": self._watch.wait_ms},
            idempotent=True, held_ms=hold_ms)
        return self._take(answer) > after

    async def _fetch(self) -> None:
        self._take(await self._routing.meta({"op": "Catalog"}))

    def _take(self, answer: Mapping[str, Any]) -> int:
        """Install a whole catalog unless a newer epoch was seen meanwhile; its epoch."""
        epoch = int(answer.get("epoch", self._epoch))
        self._fetched_epoch = max(self._fetched_epoch, epoch)
        self._fetched = True
        if epoch < self._epoch:
            return epoch  # an older answer overtaken by a newer one
        raw = answer.get("tables") or {}
        entries = raw.values() if isinstance(raw, Mapping) else raw
        tables = (TableInfo.from_entry(entry) for entry in entries)
        self._tables = {t.name: t for t in tables if t.status != DELETED}
        self._epoch = epoch
        return epoch
