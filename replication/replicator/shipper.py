"""Ship one shard of one global table to one other region, in order, forever.

Two coroutines per (destination, table, shard), joined by a bounded queue:

* the reader tails `StreamRead` from the checkpoint (reading again at once after a full page,
  after `poll_busy_ms` after a partial one), keeps the records whose origin is this region (the
  others came from elsewhere: shipping them back would echo), and queues them with the seq they
  reach. Every read is a long poll (`stream_wait_ms`): the leader holds an empty page until a
  record of the shard is applied, so an idle shard costs one call per `stream_wait_ms` and a new
  record is read as soon as it commits. An empty page that comes back sooner (a node that
  does not hold reads, or holds too many) is followed by a pause of up to `poll_idle_ms`;
* the sender takes what is queued (up to `batch_records`), ships it as one batch, retries with
  backoff until the destination acknowledges it, then advances the checkpoint to the batch's
  last seq.

One batch in flight per shard keeps the checkpoint exact (it only ever covers acknowledged
records); many shards ship at once. While the link is down the reader keeps reading ahead up to
`max_buffered_records`, so the lag report can count what is waiting.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable

from dynalab.errors import DynalabError, TrimmedDataAccessException
from dynalab.ring import Partition
from proto import replicator_pb2
from replication.replicator import changes as wire
from replication.replicator.checkpoints import CheckpointStore
from replication.replicator.lag import LagTracker
from replication.replicator.peer import PeerLink, PeerUnavailable
from replication.replicator.region import LocalRegion

__all__ = ["ShipperConfig", "ShardShipper", "ship_until_acked", "Backoff"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShipperConfig:
    read_limit: int = 200
    batch_records: int = 500
    # Empty reads are never repeated more often than this (a node that answers at once).
    poll_idle_ms: int = 100
    poll_busy_ms: int = 10
    # How long the leader may hold an empty StreamRead (node/service.py; at most 60 s). Each
    # read's deadline is this plus the margin: room for the leader's wait for a new leader's
    # hint (1 s) and the round trip. A leader paused without its stream breaking is given up on
    # then.
    stream_wait_ms: int = 20_000
    stream_wait_margin_ms: int = 5_000
    backoff_ms: tuple[int, int] = (50, 1000)
    max_buffered_records: int = 5000


class Backoff:
    """Doubling waits between `low_ms` and `high_ms`; `reset` after a success."""

    def __init__(self, low_ms: int, high_ms: int) -> None:
        self._low_ms, self._high_ms = low_ms, high_ms
        self._next_ms = low_ms

    async def wait(self) -> None:
        await asyncio.sleep(self._next_ms / 1000)
        self._next_ms = min(self._next_ms * 2, self._high_ms)

    def reset(self) -> None:
        self._next_ms = self._low_ms


@dataclass(frozen=True)
class _Chunk:
    records: list[dict[str, Any]]  # own-origin records, in seq order
    last_seq: str                  # the seq the stream was read up to


async def ship_until_acked(link: PeerLink, batch: replicator_pb2.Batch, backoff: Backoff,
                           on_link: Callable[[bool], None]) -> replicator_pb2.Ack:
    """Send `batch` until the destination applies it (error acks and link failures are retried
    after a backoff: the same changes again are harmless). Ends only by success or cancellation."""
    while True:
        try:
            ack = await link.send(batch)
            on_link(True)
            if not ack.error_type:
                backoff.reset()
                return ack
            log.info("%s refused a %s batch of %s: %s %s", link.region, batch.kind, batch.table,
                     ack.error_type, ack.error_message)
        except PeerUnavailable as exc:
            on_link(False)
            log.debug("ship to %s: %s", link.region, exc)
        await backoff.wait()


class ShardShipper:
    def __init__(self, region: LocalRegion, link: PeerLink, checkpoints: CheckpointStore,
                 lag: LagTracker, table_name: str, table_id: str, shard: Partition,
                 config: ShipperConfig, now_ms: Callable[[], float]) -> None:
        self._region = region
        self._link = link
        self._checkpoints = checkpoints
        self._lag = lag
        self._table_name = table_name
        self._table_id = table_id
        self._shard = shard
        self._config = config
        self._now_ms = now_ms
        self._dest = link.region
        self._stream = (table_id, shard.id)
        chunks = max(1, config.max_buffered_records // max(1, config.read_limit))
        self._queue: asyncio.Queue[_Chunk] = asyncio.Queue(maxsize=chunks)

    async def run(self) -> None:
        """Read and ship until cancelled. Neither half ends by itself: if one fails, the other
        is stopped and the failure raised, so that the replicator's reconcile starts the
        shipper again (a dead reader used to leave the sender waiting on an empty queue)."""
        reader = asyncio.create_task(self._read(), name=f"read {self._stream}")
        sender = asyncio.create_task(self._send(), name=f"send {self._stream}")
        try:
            done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
            raise RuntimeError(f"shipper of {self._stream} to {self._dest} stopped by itself")
        finally:
            for task in (reader, sender):
                task.cancel()
            await asyncio.wait({reader, sender}, timeout=1.0)  # bounded: a stop must not hang
            self._lag.forget(self._dest, self._stream)

    # -- reading the stream

    async def _read(self) -> None:
        cursor = self._checkpoints.get(self._dest, self._table_id, self._shard.id)
        backoff = Backoff(*self._config.backoff_ms)
        while True:
            started_ms = self._now_ms()
            try:
                page = await self._region.stream_read(
                    self._table_id, self._shard, cursor, self._config.read_limit,
                    self._config.stream_wait_ms, self._config.stream_wait_margin_ms)
            except TrimmedDataAccessException:
                # The records after the checkpoint are gone (older than the retention): go on
                # from the oldest kept; what was trimmed unshipped is lost for this destination.
                log.warning("%s/%s: the stream was trimmed past the checkpoint for %s; "
                            "continuing from the trim horizon", self._table_name, self._shard.id,
                            self._dest)
                cursor = None
                continue
            except DynalabError as exc:
                log.info("StreamRead %s/%s: %s", self._table_name, self._shard.id, exc.message)
                await backoff.wait()
                continue
            backoff.reset()
            if page.records:
                cursor = page.records[-1]["seq"]
                await self._queue_records(page.records, cursor, page.latest)
            elapsed_ms = self._now_ms() - started_ms
            pause_ms = self._pause_ms(len(page.records), elapsed_ms)
            if pause_ms:
                await asyncio.sleep(pause_ms / 1000)

    async def _queue_records(self, records: list[dict[str, Any]], cursor: str,
                             latest: str | None) -> None:
        own = [r for r in records if r.get("origin") == self._region.name]
        self._lag.read(self._dest, self._stream, (float(r.get("time_ms", 0)) for r in own))
        chunk = _Chunk(own, cursor)
        if self._queue.full():
            self._lag.unread(self._dest, self._stream, True)
        await self._queue.put(chunk)
        self._lag.unread(self._dest, self._stream, latest is not None and latest != cursor)

    def _pause_ms(self, count: int, elapsed_ms: float) -> float:
        """How long to wait before the next read, after one that took `elapsed_ms` and got
        `count` records. An empty read was held until now by the leader: read again at once,
        unless it came back too soon to have been held."""
        if count >= self._config.read_limit:
            return 0
        if count:
            return self._config.poll_busy_ms
        return max(0.0, self._config.poll_idle_ms - elapsed_ms)

    # -- shipping

    async def _send(self) -> None:
        backoff = Backoff(*self._config.backoff_ms)
        while True:
            chunks = [await self._queue.get()]
            while not self._queue.empty() and \
                    sum(len(c.records) for c in chunks) < self._config.batch_records:
                chunks.append(self._queue.get_nowait())
            records = [r for c in chunks for r in c.records]
            if records:
                batch = replicator_pb2.Batch(
                    origin_region=self._region.name, table=self._table_name, kind=wire.CHANGES,
                    changes=wire.encode([wire.from_record(r) for r in records]))
                await ship_until_acked(self._link, batch, backoff, self._on_link)
                self._lag.acked(self._dest, self._stream, len(records), self._now_ms())
            self._checkpoints.advance(self._dest, self._table_id, self._shard.id,
                                      chunks[-1].last_seq)

    def _on_link(self, up: bool) -> None:
        self._lag.connected(self._dest, up)

