"""The replicator of one region: which shards ship where, kept in line with the catalog.

After every answer of the catalog watch (a change, as soon as it commits; router.catalog) and
about once a second on the cached catalog (to restart a shipper or backfill that failed),
`reconcile` compares what should run with what runs: one `ShardShipper` per (other replica
region, global table, shard), one backfill per replica this region must fill (its catalog says
CREATING and names this region as the source). Shippers of tables or destinations that went away
are cancelled and their checkpoints dropped. Background loops also flush checkpoints (~100 ms
after they move) and write the lag file (~1 s).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine

from dynalab.errors import DynalabError
from dynalab.files import atomic_write_text
from dynalab.links import LinkPlan, connect_address
from dynalab.topology import Topology
from replication.replicator.backfill import backfill
from replication.replicator.checkpoints import CheckpointStore
from replication.replicator.lag import LagTracker
from replication.replicator.peer import PeerConfig, PeerLink
from replication.replicator.region import (LocalRegion, backfill_source, global_destinations,
                                           replica_status)
from replication.replicator.service import Applier, ReplicatorService
from replication.replicator.shipper import ShardShipper, ShipperConfig
from router.catalog import ACTIVE, CREATING, UPDATING, Catalog, TableInfo, WatchConfig
from router.nodes import StorageTransport

__all__ = ["Replicator", "ReplicatorConfig", "lag_path", "checkpoint_path", "read_lag"]

log = logging.getLogger(__name__)

_REPLICATED = (ACTIVE, UPDATING, CREATING)


@dataclass(frozen=True)
class ReplicatorConfig:
    shipper: ShipperConfig = field(default_factory=ShipperConfig)
    peer: PeerConfig = field(default_factory=PeerConfig)
    catalog_watch: WatchConfig = field(default_factory=WatchConfig)
    reconcile_ms: int = 1000  # also reconcile on the cached catalog this often
    checkpoint_flush_ms: int = 100
    lag_write_ms: int = 1000
    # > how long a router may still use a catalog older than the new replica (one round trip
    # after the change commits, with the watch; see backfill.backfill)
    backfill_settle_ms: int = 2000


def lag_path(data_dir: Path, region: str) -> Path:
    return Path(data_dir) / "replication" / f"{region}.json"


def checkpoint_path(data_dir: Path, region: str) -> Path:
    return Path(data_dir) / "replication" / region / "checkpoints.json"


def read_lag(data_dir: Path, region: str) -> dict[str, Any] | None:
    """The lag file a replicator wrote (None if there is none or it is unreadable)."""
    try:
        return dict(json.loads(lag_path(data_dir, region).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _now_ms() -> float:
    return time.time() * 1000


def _succeeded(task: asyncio.Task[bool]) -> bool:
    return not task.cancelled() and task.result() is True


class Replicator:
    def __init__(self, topology: Topology, region: str, data_dir: Path,
                 plan: LinkPlan | None = None, transport: StorageTransport | None = None,
                 config: ReplicatorConfig = ReplicatorConfig()) -> None:
        self.region = region
        self._config = config
        self._data_dir = Path(data_dir)
        self.local = LocalRegion(topology, region, transport, config.catalog_watch)
        self._checkpoints_moved = asyncio.Event()
        self.checkpoints = CheckpointStore(checkpoint_path(data_dir, region),
                                           on_dirty=self._checkpoints_moved.set)
        self.lag = LagTracker(region)
        own_id = topology.region(region).replicator_id
        self.links = {r.name: PeerLink(r.name, connect_address(topology, plan, own_id,
                                                               r.replicator_id), config.peer)
                      for r in topology.regions if r.name != region}
        for dest in self.links:
            self.lag.add_destination(dest)
        self.service = ReplicatorService(region, Applier(self.local, self.lag), self.status)
        self._shippers: dict[tuple[str, str, str], asyncio.Task[bool]] = {}
        self._backfills: dict[tuple[str, str], asyncio.Task[bool]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle

    async def start(self, wait_ms: int = 10_000) -> None:
        """Fetch the catalog (bounded), start shipping what it says, and the background loops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000
        for _ in range(wait_ms // 100 + 1):
            try:
                await asyncio.wait_for(self.local.catalog.refresh(),
                                       max(0.1, deadline - loop.time()))
                self.reconcile(self.local.catalog)
                break
            except (DynalabError, asyncio.TimeoutError) as exc:
                log.info("catalog not available yet: %r", exc)
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.1)
        self.local.catalog.on_refresh(self._reconciled)
        self._spawn(self.local.catalog.run())
        self._spawn(self._every(self._config.reconcile_ms, self._reconcile_cached))
        self._spawn(self._flush_checkpoints())
        self._spawn(self._every(self._config.lag_write_ms, self.write_lag))

    async def stop(self) -> None:
        await self.halt()
        self.checkpoints.flush()
        self.write_lag()
        await self.local.close()

    async def halt(self) -> None:
        """End every task and close the links, flushing and writing nothing: what a killed
        process leaves behind (in-process tests stand it for kill -9); `stop` also saves."""
        tasks = [*self._tasks, *self._shippers.values(), *self._backfills.values()]
        self._tasks.clear()
        self._shippers.clear()
        self._backfills.clear()
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: whatever does not end in time is abandoned with the process
            await asyncio.wait(tasks, timeout=5.0)
        await asyncio.gather(*(link.close() for link in self.links.values()))

    # -- what should run

    async def _reconciled(self, catalog: Catalog) -> None:
        self.reconcile(catalog)

    def _reconcile_cached(self) -> None:
        """Restart what failed without waiting for a catalog change. Only once a whole catalog
        was fetched: reconciling with an empty cache would drop every checkpoint."""
        if not self.local.catalog.fetched:
            return
        try:
            self.reconcile(self.local.catalog)
        except Exception:  # noqa: BLE001 - a bad entry must not end the periodic reconcile
            log.exception("reconcile failed")

    def reconcile(self, catalog: Catalog) -> None:
        """Start and stop shippers and backfills to match the catalog (only ever called with a
        freshly fetched one: an empty catalog because of an error must not drop checkpoints)."""
        tables = [t for t in catalog.tables() if t.status in _REPLICATED and t.replicas]
        wanted = {(dest, t.id, shard.id): (t, shard)
                  for t in tables for dest in global_destinations(t, self.region, self._known())
                  for shard in self.local.shards()}
        for key in [k for k in self._shippers if k not in wanted]:
            self._shippers.pop(key).cancel()
        for key, (table, shard) in wanted.items():
            if key not in self._shippers or self._shippers[key].done():
                shipper = ShardShipper(self.local, self.links[key[0]], self.checkpoints,
                                       self.lag, table.name, table.id, shard,
                                       self._config.shipper, _now_ms)
                self._shippers[key] = self._supervised(shipper.run(), f"ship {key}")
        pairs = {(dest, table_id) for dest, table_id, _ in wanted}
        for dest, table_id in self.checkpoints.pairs() - pairs:
            self.checkpoints.forget(dest, table_id)
        self._reconcile_backfills(tables)

    def _reconcile_backfills(self, tables: list[TableInfo]) -> None:
        wanted = {(dest, t.id): t for t in tables
                  for dest in global_destinations(t, self.region, self._known())
                  if replica_status(t, dest) == CREATING
                  and backfill_source(t, dest) == self.region}
        for key in [k for k in self._backfills if k not in wanted]:
            self._backfills.pop(key).cancel()
        for key, table in wanted.items():
            running = self._backfills.get(key)
            if running is None or (running.done() and not _succeeded(running)):
                link = self.links[key[0]]
                job = backfill(self.local, link, table, self._config.shipper.backoff_ms,
                               lambda up, dest=key[0]: self.lag.connected(dest, up),
                               self._config.backfill_settle_ms)
                self._backfills[key] = self._supervised(job, f"backfill {key}")

    def _known(self) -> tuple[str, ...]:
        return tuple(self.links)

    # -- status

    def status(self) -> dict[str, Any]:
        snapshot = self.lag.snapshot(_now_ms())
        snapshot["shippers"] = len(self._shippers)
        snapshot["backfills"] = sorted(f"{d}/{t}" for (d, t), task in self._backfills.items()
                                       if not task.done())
        return snapshot

    def write_lag(self) -> None:
        # Readers see a whole file; not durable: it is rewritten every second.
        atomic_write_text(lag_path(self._data_dir, self.region),
                          json.dumps(self.status(), indent=2) + "\n")

    # -- tasks

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _supervised(self, coroutine: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[bool]:
        """A shipper or backfill: a crash is logged, and the next reconcile starts it again.
        The task's result says whether it finished normally."""
        async def run() -> bool:
            try:
                await coroutine
                return True
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one shard's bug must not stop the others
                log.exception("%s failed; restarting it on the next reconcile", what)
                return False
        return asyncio.create_task(run(), name=what)

    async def _flush_checkpoints(self) -> None:
        """Write the checkpoints checkpoint_flush_ms after they move (so at most that often),
        waking only when they did: a 100 ms timer alone cost an idle replicator ~0.15% of a
        core."""
        moved = self._checkpoints_moved
        while True:
            await moved.wait()
            await asyncio.sleep(self._config.checkpoint_flush_ms / 1000)
            moved.clear()  # before the write: a change from now on wakes us again
            with contextlib.suppress(OSError):
                self.checkpoints.flush()
            if self.checkpoints.dirty:  # the write failed: try again after an interval
                moved.set()

    async def _every(self, interval_ms: int, step: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            with contextlib.suppress(OSError):
                step()
