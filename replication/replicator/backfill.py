"""Copy a table's existing items to a new replica region (docs/cluster.md, "Backfill").

Scans every partition of the table (consistent `Range` pages with the hidden `(ts, origin)`),
ships each page as a "backfill" batch, and once every page is acknowledged tells the destination
("replica_active") and marks the replica ACTIVE in this region's catalog. Items keep their stored
version, so a write made in the new region meanwhile is not overwritten by an older copy, and a
copy that arrives after a newer streamed change is skipped by LWW. Stream records written during
the scan are shipped by the shard shippers (they start at the trim horizon), so the scan needs no
snapshot. Killed half-way, it simply runs again from the start on the next reconcile.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from dynalab.errors import DynalabError
from dynalab.ring import Partition
from proto import replicator_pb2
from replication.replicator import changes as wire
from replication.replicator.peer import PeerLink
from replication.replicator.region import LocalRegion
from replication.replicator.shipper import Backoff, ship_until_acked
from router.catalog import TableInfo

__all__ = ["backfill"]

log = logging.getLogger(__name__)

_PARALLEL_SHARDS = 4
_BATCH_CHANGES = 500  # a 1 MB page of tiny items is many changes: ship it in slices


async def backfill(region: LocalRegion, link: PeerLink, table: TableInfo,
                   backoff_ms: tuple[int, int], on_link: Callable[[bool], None],
                   settle_ms: int = 0) -> int:
    """Run the whole backfill of `table` to `link.region`; returns how many items were copied.

    It first waits `settle_ms`: a router whose catalog cache is older than the replica may still
    write the table as a regional one, without a change record; the scan must start after the
    last such write to copy it. Routers watch the catalog (router.catalog): the meta leader
    answers every watch as soon as the change that added the replica is applied, so a router
    holds the older catalog for one round trip after the commit (plus any write it had already
    routed). That is the bound the settle time must exceed; it was a 1 s poll before, so the 2 s
    default has room to spare. A router whose watch is broken (meta leader failing over) holds
    it longer, until its watch is answered again, as before, when its poll failed."""
    dest = link.region
    await asyncio.sleep(settle_ms / 1000)
    log.info("backfill of %s to %s: started", table.name, dest)
    limit = asyncio.Semaphore(_PARALLEL_SHARDS)

    async def one(shard: Partition) -> int:
        async with limit:
            return await _shard(region, link, table, shard, backoff_ms, on_link)

    copied = sum(await asyncio.gather(*(one(s) for s in region.shards())))
    done = replicator_pb2.Batch(origin_region=region.name, table=table.name,
                                kind=wire.REPLICA_ACTIVE)
    await ship_until_acked(link, done, Backoff(*backoff_ms), on_link)
    await _retrying(lambda: region.set_replica_status(table, dest, "ACTIVE"), backoff_ms)
    log.info("backfill of %s to %s: done, %d items", table.name, dest, copied)
    return copied


async def _shard(region: LocalRegion, link: PeerLink, table: TableInfo, shard: Partition,
                 backoff_ms: tuple[int, int], on_link: Callable[[bool], None]) -> int:
    backoff = Backoff(*backoff_ms)
    while True:  # a failed scan starts the shard over; each pass is bounded by the shard's size
        copied = 0
        try:
            async for page in region.scan_pages(table.id, shard):
                changes = [wire.from_stored(s.item, s.meta, table.schema, region.name)
                           for s in page]
                for start in range(0, len(changes), _BATCH_CHANGES):
                    chunk = changes[start:start + _BATCH_CHANGES]
                    batch = replicator_pb2.Batch(origin_region=region.name, table=table.name,
                                                 kind=wire.BACKFILL, changes=wire.encode(chunk))
                    await ship_until_acked(link, batch, Backoff(*backoff_ms), on_link)
                copied += len(changes)
            return copied
        except DynalabError as exc:
            log.info("backfill of %s, shard %s: %s; starting the shard over", table.name,
                     shard.id, exc.message)
            await backoff.wait()


async def _retrying(step: Callable[[], Awaitable[None]], backoff_ms: tuple[int, int]) -> None:
    backoff = Backoff(*backoff_ms)
    while True:
        try:
            await step()
            return
        except DynalabError as exc:
            log.info("backfill: catalog update failed (%s); retrying", exc.message)
            await backoff.wait()
