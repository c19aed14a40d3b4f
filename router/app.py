"""The router's state and its operation table.

`Router` holds what every operation needs: the routing to partition groups, the catalog cache,
the region and AZ it serves, and its background tasks. `Router.handle(operation, body)` runs one
DynamoDB operation and returns the response body or raises a dynalab.errors type; turning those
into HTTP is `router.server`'s job alone.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Coroutine

from dynalab.errors import DynalabError, ResourceNotFoundException, UnknownOperationException
from dynalab.topology import Topology
from router.catalog import ACTIVE, UPDATING, Catalog, TableInfo, WatchConfig
from router.control import housekeeping
from router.nodes import StorageTransport
from router.operations import OPERATIONS
from router.replicas import REPLICA_OPERATIONS
from router.streams import STREAMS_OPERATIONS
from router.params import Checks, field_str
from router.routing import RetryConfig, Routing

__all__ = ["Router", "RouterConfig", "Operation"]

log = logging.getLogger(__name__)

_SERVING = (ACTIVE, UPDATING)  # statuses in which a table takes reads and writes
Operation = Callable[["Router", dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class RouterConfig:
    create_delay_ms: int = 200         # CREATING -> ACTIVE after this long (DynamoDB takes seconds)
    catalog_watch: WatchConfig = field(default_factory=WatchConfig)
    housekeeping_ms: int = 1000        # how often stuck tables are looked for (cached catalog)
    stuck_creating_ms: int = 3000      # any router finishes a CreateTable whose router vanished
    stuck_deleting_ms: int = 10_000    # ... and a DeleteTable
    retry: RetryConfig = field(default_factory=RetryConfig)


class Router:
    def __init__(self, transport: StorageTransport, topology: Topology, region: str, az: str,
                 config: RouterConfig | None = None) -> None:
        self.config = config or RouterConfig()
        self.region = region
        self.az = az
        self.topology = topology
        self.routing = Routing(transport, topology, region, az, self.config.retry)
        self.catalog = Catalog(self.routing, self.config.catalog_watch)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._operations: dict[str, Operation] = {**OPERATIONS, **REPLICA_OPERATIONS}
        self._stream_operations: dict[str, Operation] = dict(STREAMS_OPERATIONS)
        self._housekeeping = housekeeping(self)

    async def start(self, wait_ms: int = 0, give_up: asyncio.Event | None = None) -> None:
        """Fetch the catalog, trying for up to `wait_ms` (or until `give_up` is set), then start
        the background catalog watch and housekeeping. Best effort: a metadata group that
        cannot elect must not keep the router from serving; the watch and refresh-on-miss keep
        trying."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        for _ in range(wait_ms // 100 + 1):  # bounded; a failed try sleeps 100 ms
            remaining = deadline - loop.time()
            if remaining <= 0 or (give_up is not None and give_up.is_set()):
                break
            try:
                await asyncio.wait_for(self.catalog.refresh(), remaining)
                break
            except asyncio.TimeoutError:
                break
            except DynalabError as exc:
                log.warning("catalog fetch failed: %s", exc.message)
            await asyncio.sleep(0.1)
        self.spawn(self.catalog.run())
        self.spawn(self._housekeep())

    async def _housekeep(self) -> None:
        """Finish stuck table lifecycles, looking at the cached catalog every housekeeping_ms
        (not after each catalog fetch: the watch answers only on changes, and a stuck table
        is one whose catalog entry does not change). RPCs only for a stuck table."""
        while True:
            await asyncio.sleep(self.config.housekeeping_ms / 1000)
            try:
                await self._housekeeping(self.catalog)
            except Exception:  # noqa: BLE001 - one bad round must not end housekeeping
                log.exception("housekeeping failed")

    async def stop(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.routing.transport.close()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background job owned by the router (cancelled by stop)."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def handle(self, operation: str, body: dict[str, Any], *,
                     streams: bool = False) -> dict[str, Any]:
        """Run a DynamoDB operation (`streams`: a DynamoDB Streams one)."""
        handler = (self._stream_operations if streams else self._operations).get(operation)
        if handler is None:
            raise UnknownOperationException(f"Unknown operation: {operation}")
        return await handler(self, body)

    @property
    def operations(self) -> tuple[str, ...]:
        return tuple(sorted(self._operations))

    def table_arn(self, name: str) -> str:
        return f"arn:aws:dynamodb:{self.region}:000000000000:table/{name}"

    async def active_table(self, body: dict[str, Any], checks: Checks | None = None) -> TableInfo:
        """The table a data-plane request names, checked with the request's other constraints.
        A table that is not there, or not ACTIVE yet / any more, is not found, as in DynamoDB."""
        checks = checks or Checks()
        name = field_str(body, "TableName")
        checks.table_name(name)
        checks.done()
        assert name is not None
        return await self.table_named(name)

    async def table_named(self, name: str) -> TableInfo:
        table = await self.catalog.lookup(name)
        if table is not None and table.status not in _SERVING:
            # The cache may be behind a status change made by another router: ask once more.
            await self.catalog.refresh()
            table = self.catalog.get(name)
        if table is None or table.status not in _SERVING:
            raise ResourceNotFoundException("Requested resource not found")
        return table
