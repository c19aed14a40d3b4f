"""The receiving side: the `Replicator` gRPC service and the applier behind it.

`Ship` is one long-lived stream per sending region. Every batch is applied in its own task (a
slow partition must not hold up the batches of other shards behind it) and acked as soon as all
its changes are applied; acks go back in completion order, with the batch_id. A batch is applied
by grouping its changes by this region's partitions and sending one `ReplicaApply` per partition
to its leader, all at once; LWW on the node decides each change.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable

import grpc
import orjson

from dynalab.errors import DynalabError, ResourceNotFoundException, ValidationException
from proto import replicator_pb2, replicator_pb2_grpc
from replication.replicator import changes as wire
from replication.replicator.lag import LagTracker
from replication.replicator.region import LocalRegion
from router.catalog import DELETING, TableInfo

__all__ = ["Applier", "ReplicatorService"]

log = logging.getLogger(__name__)


class Applier:
    def __init__(self, region: LocalRegion, lag: LagTracker) -> None:
        self._region = region
        self._lag = lag

    async def apply(self, batch: replicator_pb2.Batch) -> replicator_pb2.Ack:
        """Apply one batch; never raises (a failure is an error ack the sender retries)."""
        try:
            applied, skipped = await self._apply(batch)
        except DynalabError as exc:
            return replicator_pb2.Ack(batch_id=batch.batch_id, error_type=type(exc).__name__,
                                      error_message=exc.message)
        except (ValueError, KeyError, TypeError) as exc:
            return replicator_pb2.Ack(batch_id=batch.batch_id, error_type="ValidationException",
                                      error_message=f"malformed batch: {exc!r}")
        self._lag.incoming(batch.origin_region, applied, skipped)
        return replicator_pb2.Ack(batch_id=batch.batch_id, applied=applied, skipped=skipped)

    async def _apply(self, batch: replicator_pb2.Batch) -> tuple[int, int]:
        if batch.kind not in wire.KINDS:
            raise ValidationException(f"unknown batch kind {batch.kind!r}")
        table = await self._replica_of(batch.table, batch.origin_region)
        if batch.kind == wire.REPLICA_ACTIVE:
            await self._region.set_replica_status(table, self._region.name, "ACTIVE")
            return 0, 0
        groups = wire.by_partition(wire.decode(batch.changes), table.schema, self._region.pmap)
        results = await asyncio.gather(*(self._region.replica_apply(table, partition, group)
                                         for partition, group in groups.items()))
        return sum(a for a, _ in results), sum(s for _, s in results)

    async def _replica_of(self, name: str, origin: str) -> TableInfo:
        """The local table `name`, if it is a replica of `origin`'s table (refreshing the catalog
        once: the table may have become global a moment ago)."""
        table = self._region.catalog.get(name)
        if not _replicates(table, origin):
            await self._region.catalog.refresh()
            table = self._region.catalog.get(name)
        if table is None or not _replicates(table, origin):
            raise ResourceNotFoundException(
                f"{self._region.name} has no replica of {origin}'s table {name}")
        return table


def _replicates(table: TableInfo | None, origin: str) -> bool:
    return table is not None and table.status != DELETING and origin in table.replicas


class ReplicatorService(replicator_pb2_grpc.ReplicatorServicer):
    def __init__(self, region: str, applier: Applier,
                 status: Callable[[], dict[str, Any]]) -> None:
        self._region = region
        self._applier = applier
        self._status = status

    async def Status(self, request: replicator_pb2.StatusRequest,
                     context: grpc.aio.ServicerContext) -> replicator_pb2.StatusReply:
        return replicator_pb2.StatusReply(region=self._region, status=orjson.dumps(self._status()))

    async def Ship(self, request_iterator: AsyncIterator[replicator_pb2.Batch],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[replicator_pb2.Ack]:
        acks: asyncio.Queue[replicator_pb2.Ack | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(request_iterator, acks))
        try:
            while (ack := await acks.get()) is not None:
                yield ack
        finally:
            reader.cancel()

    async def _read(self, request_iterator: AsyncIterator[replicator_pb2.Batch],
                    acks: asyncio.Queue[replicator_pb2.Ack | None]) -> None:
        tasks: set[asyncio.Task[None]] = set()

        async def one(batch: replicator_pb2.Batch) -> None:
            acks.put_nowait(await self._applier.apply(batch))

        try:
            async for batch in request_iterator:
                task = asyncio.create_task(one(batch))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*list(tasks), return_exceptions=True)
        except asyncio.CancelledError:
            for task in list(tasks):
                task.cancel()
            raise
        except Exception as exc:  # the sender went away: nobody is left to ack
            log.debug("Ship stream ended: %r", exc)
        acks.put_nowait(None)
