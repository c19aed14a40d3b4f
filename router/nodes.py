"""The router's client for storage nodes: one multiplexed, batched `Storage.Execute` stream per
node.

Every request to a node travels on one long-lived bidirectional gRPC stream to that node (a
unary call per request per hop is the slowest thing on this machine, DESIGN.md). Requests carry a
`request_id`; each waits on its own future; a sender task drains the node's queue into one
`RequestBatch` per write, so many concurrent client requests cost one message; a reader task
resolves futures as `ResponseBatch`es arrive, in any order.

This layer only moves requests and answers; it never retries (that is `router.routing`'s job,
which knows whether a request may be repeated). Transport failures come back as a `Reply` whose
`error_type` says how much is known:

* `UNAVAILABLE`: the request never left the router (no connection). Safe to retry anywhere.
* `LOST`: the stream broke after the request was sent: the node may or may not have applied it.
* `TIMEOUT`: no answer within the request's deadline; same uncertainty as LOST.

`StorageTransport` is the seam: routing talks to it, tests replace it with an in-process stand-in.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Protocol

import grpc
import grpc.aio

from proto import storage_pb2, storage_pb2_grpc

__all__ = ["StorageRequest", "Reply", "StorageTransport", "GrpcTransport", "StreamConfig",
           "UNAVAILABLE", "LOST", "TIMEOUT", "NOT_LEADER"]

log = logging.getLogger(__name__)

# error_type values. UNAVAILABLE and NOT_LEADER are also what nodes answer (docs/cluster.md).
UNAVAILABLE = "Unavailable"
NOT_LEADER = "NotLeader"
LOST = "Lost"
TIMEOUT = "Timeout"
_PRUNE_AT = 4096  # in-flight entries before timed-out ones are swept


# StorageRequest and Reply are NamedTuples: immutable like a frozen dataclass, and built in
# half the time (one of each per request; docs/performance.md).
class StorageRequest(NamedTuple):
    """One request for a node: `body` is the operation's JSON (encoded once, reused on retries)."""

    operation: str
    partition: str
    body: bytes
    map_epoch: int = 0


class Reply(NamedTuple):
    """A node's answer, or the transport's account of why there is none."""

    body: bytes = b""
    error_type: str = ""
    error_message: str = ""
    leader_hint: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_type


class StorageTransport(Protocol):
    """What routing needs from the node connections."""

    async def execute(self, node_id: str, request: StorageRequest, timeout_ms: int) -> Reply:
        """Send `request` to `node_id`; never raises for transport trouble (see the module doc)."""
        ...

    async def close(self) -> None:
        ...


@dataclass(frozen=True)
class StreamConfig:
    max_batch: int = 512               # requests per RequestBatch message
    connect_timeout_ms: int = 1000     # longest wait for a connection before UNAVAILABLE
    reconnect_backoff_ms: tuple[int, int] = (20, 1000)  # min, max between failed connects
    max_message_bytes: int = 64 * 1024 * 1024  # a Range page is ~1 MB of items plus JSON overhead
    idle_ms: int = 30_000              # a stream with no traffic for this long is closed


class _Pending:
    __slots__ = ("request_id", "request", "future", "sent")

    def __init__(self, request_id: int, request: StorageRequest,
                 future: asyncio.Future[Reply]) -> None:
        self.request_id = request_id
        self.request = request
        self.future = future
        self.sent = False


@dataclass
class _Session:
    """One Execute call; replaced by a new one when it breaks."""

    call: grpc.aio.StreamStreamCall
    inflight: dict[int, _Pending] = field(default_factory=dict)


class NodeStream:
    """The stream to one node. Opened lazily on the first request; reopened after a failure."""

    def __init__(self, node_id: str, address: str, config: StreamConfig) -> None:
        self.node_id = node_id
        self._config = config
        # Created in a running loop (the channel binds to it too); kept, because every
        # asyncio.get_running_loop() is a getpid() system call on Python 3.11.
        self._loop = asyncio.get_running_loop()
        self._channel = grpc.aio.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.initial_reconnect_backoff_ms", config.reconnect_backoff_ms[0]),
            ("grpc.max_reconnect_backoff_ms", config.reconnect_backoff_ms[1]),
        ])
        self._stub = storage_pb2_grpc.StorageStub(self._channel)
        # Requests not yet sent. A deque and one wake-up future for the sender, rather than an
        # asyncio.Queue read with ensure_future(get()) + asyncio.wait per batch.
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._ids = itertools.count(1)
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self._down_until = 0.0  # loop time before which requests fail fast (connect failed)

    async def execute(self, request: StorageRequest, timeout_ms: int) -> Reply:
        loop = self._loop
        if self._closed:
            return Reply(error_type=UNAVAILABLE, error_message="router is shutting down")
        if loop.time() < self._down_until:
            # Fail fast while a failed connect is backing off, so that routing can try another
            # replica now instead of every request waiting out a connect timeout.
            return Reply(error_type=UNAVAILABLE,
                         error_message=f"node {self.node_id} is unreachable")
        pending = _Pending(next(self._ids), request, loop.create_future())
        self._queue.append(pending)
        waiter = self._wakeup
        if waiter is not None:
            # Wake the sender one loop iteration later, so that the requests the other tasks of
            # this iteration are about to queue go in the same batch.
            self._wakeup = None
            loop.call_soon(_wake, waiter)
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run(), name=f"stream-{self.node_id}")
        # One timer per request rather than wait_for(shield(...)): the same outcome for a fraction
        # of the event-loop work (docs/performance.md). An answer that comes after the timer
        # fired is dropped by the session (the future is done by then).
        timer = loop.call_later(timeout_ms / 1000, self._expire, pending, timeout_ms)
        try:
            return await pending.future
        finally:
            timer.cancel()

    def _expire(self, pending: _Pending, timeout_ms: int) -> None:
        _settle(pending, Reply(
            error_type=TIMEOUT if pending.sent else UNAVAILABLE,
            error_message=f"no answer from {self.node_id} in {timeout_ms} ms"))

    async def close(self) -> None:
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self._fail_queued(UNAVAILABLE, "router is shutting down")
        await self._channel.close()

    async def _run(self) -> None:
        """Sessions back to back while there is work; returns once a session idles out with the
        queue empty (the next request starts a new runner)."""
        loop = self._loop
        low_ms, high_ms = self._config.reconnect_backoff_ms
        backoff_ms = low_ms
        while not self._closed and self._queue:
            if not await self._connected():
                self._down_until = loop.time() + backoff_ms / 1000
                self._fail_queued(UNAVAILABLE, f"cannot connect to node {self.node_id}")
            elif await self._session():
                backoff_ms = low_ms
                continue
            # A failed connect or a broken stream: wait before the next try, so that a node that
            # refuses streams is not hammered in a tight loop.
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(backoff_ms * 2, high_ms)

    async def _connected(self) -> bool:
        try:
            await asyncio.wait_for(self._channel.channel_ready(),
                                   self._config.connect_timeout_ms / 1000)
            return True
        except (asyncio.TimeoutError, grpc.aio.AioRpcError):
            return False

    async def _session(self) -> bool:
        """Run one Execute call until it idles out (True) or breaks (False)."""
        session = _Session(self._stub.Execute())
        reader = asyncio.create_task(self._read(session))
        sender = asyncio.create_task(self._send(session, reader))
        try:
            await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            return sender.done() and not sender.cancelled() and sender.exception() is None
        finally:
            for task in (reader, sender):
                task.cancel()
            for task in (reader, sender):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            session.call.cancel()
            for pending in session.inflight.values():
                _settle(pending, Reply(error_type=LOST,
                                       error_message=f"stream to {self.node_id} broke"))

    async def _send(self, session: _Session, reader: asyncio.Task[None]) -> None:
        """Drain the queue into batches until the stream breaks, or it idles with nothing in
        flight for `idle_ms`."""
        queue, inflight, max_batch = self._queue, session.inflight, self._config.max_batch
        while not reader.done():
            if not queue:
                await self._idle(reader)
            if not queue or len(inflight) > _PRUNE_AT:
                _prune(session)
            if not queue:  # idle for idle_ms, or the stream ended
                if reader.done():
                    break
                if not inflight:
                    return
                continue
            # The messages are built in place in the batch (building each Request and then
            # the batch from them copies every one again).
            batch = storage_pb2.RequestBatch()
            add = batch.requests.add
            count = 0
            while queue and count < max_batch:
                pending = queue.popleft()
                if pending.future.done():  # timed out while queued
                    continue
                inflight[pending.request_id] = pending
                pending.sent = True
                request = pending.request
                add(request_id=pending.request_id, operation=request.operation,
                    partition=request.partition, map_epoch=request.map_epoch, body=request.body)
                count += 1
            if count:
                await session.call.write(batch)
        raise ConnectionError("stream closed")

    async def _idle(self, reader: asyncio.Task[None]) -> None:
        """Wait until a request is queued, the stream ends (`_read` wakes us as it returns), or
        `idle_ms` passed."""
        waiter = self._wakeup = self._loop.create_future()
        timer = self._loop.call_later(self._config.idle_ms / 1000, _wake, waiter)
        try:
            if not reader.done():
                await waiter
        finally:
            timer.cancel()
            self._wakeup = None

    async def _read(self, session: _Session) -> None:
        inflight = session.inflight
        try:
            async for batch in session.call:
                for response in batch.responses:
                    pending = inflight.pop(response.request_id, None)
                    if pending is not None and not pending.future.done():
                        pending.future.set_result(Reply(
                            response.body, response.error_type, response.error_message,
                            response.leader_hint))
        except grpc.aio.AioRpcError as exc:
            log.info("stream to %s ended: %s %s", self.node_id, exc.code(), exc.details())
        finally:
            if self._wakeup is not None:
                _wake(self._wakeup)  # the sender must notice that the stream ended

    def _fail_queued(self, error_type: str, message: str) -> None:
        while self._queue:
            _settle(self._queue.popleft(), Reply(error_type=error_type, error_message=message))


def _prune(session: _Session) -> None:
    """Forget requests that timed out: a node that never answers them must not grow the map."""
    for request_id in [i for i, p in session.inflight.items() if p.future.done()]:
        del session.inflight[request_id]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _settle(pending: _Pending, reply: Reply) -> None:
    if not pending.future.done():
        pending.future.set_result(reply)


class GrpcTransport:
    """`StorageTransport` over one `NodeStream` per node, addressed by node id."""

    def __init__(self, addresses: Mapping[str, str], config: StreamConfig | None = None) -> None:
        self._addresses = dict(addresses)
        self._config = config or StreamConfig()
        self._streams: dict[str, NodeStream] = {}

    async def execute(self, node_id: str, request: StorageRequest, timeout_ms: int) -> Reply:
        stream = self._streams.get(node_id)
        if stream is None:
            address = self._addresses.get(node_id)
            if address is None:
                return Reply(error_type=UNAVAILABLE, error_message=f"unknown node {node_id}")
            stream = self._streams[node_id] = NodeStream(node_id, address, self._config)
        return await stream.execute(request, timeout_ms)

    async def close(self) -> None:
        streams, self._streams = list(self._streams.values()), {}
        await asyncio.gather(*(stream.close() for stream in streams))
