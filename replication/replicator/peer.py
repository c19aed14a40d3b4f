"""The sending side of one replicator -> replicator link: one long-lived `Ship` stream, many
batches in flight on it, matched to their acks by batch_id.

`send(batch)` returns the destination's Ack or raises `PeerUnavailable` (no connection, the
stream broke, or no ack in time); it never retries: the shipper decides (it re-sends the same
changes, which LWW makes harmless). A batch that times out also ends the session, because on a
blackholed link the stream itself is what hangs, and the next send opens a fresh one.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field

import grpc
import grpc.aio

from proto import replicator_pb2, replicator_pb2_grpc

__all__ = ["PeerLink", "PeerConfig", "PeerUnavailable", "CHANNEL_OPTIONS", "SERVER_OPTIONS"]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Keepalive pings notice a link that silently drops bytes (a blackholed proxy) within seconds.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 3000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


# The receiving server must accept those pings (else it answers GOAWAY "too_many_pings").
SERVER_OPTIONS = [*CHANNEL_OPTIONS,
                  ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
                  ("grpc.http2.min_ping_interval_without_data_ms", 1000)]


class PeerUnavailable(Exception):
    """The batch was not acknowledged; it may or may not have been applied."""


@dataclass(frozen=True)
class PeerConfig:
    connect_timeout_ms: int = 1000
    ack_timeout_ms: int = 10_000


@dataclass
class _Session:
    """One Ship call and the batches sent on it; replaced when it breaks. Its writer task is the
    only one that writes to the call, so a write that blocks (flow control on a dead link) holds
    up nobody's cancellation: senders time out on their acks and end the session."""

    call: grpc.aio.StreamStreamCall
    inflight: dict[int, asyncio.Future[replicator_pb2.Ack]] = field(default_factory=dict)
    outbox: asyncio.Queue[replicator_pb2.Batch] = field(default_factory=asyncio.Queue)
    tasks: tuple[asyncio.Task[None], ...] = ()

    @property
    def alive(self) -> bool:
        return bool(self.tasks) and not any(task.done() for task in self.tasks)

    def fail(self, reason: str, region: str) -> None:
        for future in self.inflight.values():
            if not future.done():
                future.set_exception(PeerUnavailable(f"link to {region}: {reason}"))


class PeerLink:
    def __init__(self, region: str, address: str, config: PeerConfig = PeerConfig()) -> None:
        self.region = region
        self.address = address
        self._config = config
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = replicator_pb2_grpc.ReplicatorStub(self._channel)
        self._ids = itertools.count(1)
        self._session: _Session | None = None
        self._opening = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.alive

    async def send(self, batch: replicator_pb2.Batch) -> replicator_pb2.Ack:
        batch.batch_id = next(self._ids)
        session = await self._open()
        future: asyncio.Future[replicator_pb2.Ack] = asyncio.get_running_loop().create_future()
        session.inflight[batch.batch_id] = future
        session.outbox.put_nowait(batch)
        try:
            # shield: a timeout or cancellation must not wait on anything gRPC does.
            return await asyncio.wait_for(asyncio.shield(future),
                                          self._config.ack_timeout_ms / 1000)
        except asyncio.TimeoutError:
            self._end(session, f"no ack in {self._config.ack_timeout_ms} ms")
            raise PeerUnavailable(f"no ack from {self.region}") from None
        finally:
            session.inflight.pop(batch.batch_id, None)

    async def close(self) -> None:
        session = self._session
        if session is not None:
            self._end(session, "closing")
            await asyncio.wait(session.tasks, timeout=1.0)
        # Bounded: closing a channel whose peer vanished must not hold up a shutdown.
        await asyncio.wait({asyncio.ensure_future(self._channel.close())}, timeout=1.0)

    async def _open(self) -> _Session:
        async with self._opening:  # concurrent senders share one new stream
            if self._session is not None and self._session.alive:
                return self._session
            try:
                await asyncio.wait_for(self._channel.channel_ready(),
                                       self._config.connect_timeout_ms / 1000)
            except (asyncio.TimeoutError, grpc.aio.AioRpcError):
                raise PeerUnavailable(f"cannot connect to {self.region} at {self.address}") \
                    from None
            session = _Session(self._stub.Ship())
            session.tasks = (
                asyncio.create_task(self._read(session), name=f"acks-{self.region}"),
                asyncio.create_task(self._write(session), name=f"batches-{self.region}"))
            self._session = session
            return session

    async def _read(self, session: _Session) -> None:
        try:
            async for ack in session.call:
                future = session.inflight.get(ack.batch_id)
                if future is not None and not future.done():
                    future.set_result(ack)
            reason = "the stream ended"
        except grpc.aio.AioRpcError as exc:
            reason = f"{exc.code()} {exc.details()}"
        except asyncio.CancelledError:
            reason = "cancelled"
        self._end(session, reason)

    async def _write(self, session: _Session) -> None:
        try:
            while True:
                await session.call.write(await session.outbox.get())
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            self._end(session, f"the stream broke: {exc!r}")
        except asyncio.CancelledError:
            self._end(session, "cancelled")

    def _end(self, session: _Session, reason: str) -> None:
        """Forget the session and fail what waits on it; never waits itself."""
        if self._session is session:
            log.info("link to %s: %s", self.region, reason)
            self._session = None
        session.call.cancel()
        for task in session.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        session.fail(reason, self.region)
