"""The gRPC Transport: RaftTransport.Stream from proto/raft.proto, one long-lived client stream
per destination node.

`send` only appends to the destination's queue and wakes its sender task, so the driver never
blocks on the network. The sender drains everything queued into one Batch per write (many groups'
messages, appends and heartbeats alike, ride one gRPC message as one compact `frame`), which is
where batching and heartbeat coalescing pay off: while one write is on its way, whatever the
driver sends meanwhile waits and leaves in the next. When a peer is down or the stream breaks,
what was in flight is dropped (Raft retransmits), the queue is kept up to a bound (oldest dropped
first), and the sender reconnects with jittered exponential backoff. The frame's layout is the
injected `BatchCodec`'s (node/raft_codec.py).

Order: batches arrive in order per node pair, and the messages of a batch in the order sent.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Generic, Mapping, Protocol, Sequence, TypeVar

import grpc

from proto import raft_pb2, raft_pb2_grpc
from replication.transport import GroupMessage, Receiver

log = logging.getLogger(__name__)
M = TypeVar("M")
Sleep = Callable[[float], Awaitable[None]]


class BatchCodec(Protocol[M]):
    def add(self, parts: list[bytes], message: GroupMessage[M], from_node: str,
            to_node: str) -> int:
        """Append the encoded parts of one message to `parts` (it may leave out what the batch
        says: sender and receiver); return their size in bytes."""
        ...

    def frame(self, parts: list[bytes], count: int) -> bytes:
        """The batch of `count` messages added to `parts`; parts[0] is a placeholder for the
        codec's header."""
        ...

    def decode(self, frame: bytes, from_node: str, to_node: str) -> Sequence[GroupMessage[M]]:
        """The messages of a frame; ValueError if it is malformed."""
        ...


@dataclass(frozen=True, slots=True)
class TransportConfig:
    backoff_min_ms: int = 20
    backoff_max_ms: int = 1000
    max_pending_messages: int = 100_000  # per destination; past it the oldest are dropped
    max_batch_bytes: int = 4 << 20
    keepalive_ms: int = 2000  # detects a peer that stopped answering (SIGSTOP, cut link)
    # What the server accepts in one message (None: max_batch_bytes + 1 MB). A batch may exceed
    # max_batch_bytes by its last message, so with big entries this must allow for one of them.
    max_receive_bytes: int | None = None
    # No linger before a batch: a sender drains what queued while it waited for the loop. A
    # 3 ms linger once saved ~6% of the CPU per write; after the commit notices and pipelined
    # turns it saved none and added ~20% to PutItem's p99 at half of peak (docs/performance.md,
    # change 16), so it was removed.


@dataclass(frozen=True, slots=True)
class PeerStats:
    batches_sent: int = 0  # gRPC stream messages written to the peer
    messages_sent: int = 0  # Raft messages in them
    messages_dropped: int = 0
    streams_opened: int = 0
    failures: int = 0
    bytes_sent: int = 0  # frame bytes
    batches_received: int = 0  # from the peer (on the stream it opened to us)
    messages_received: int = 0
    bytes_received: int = 0
    batches_rejected: int = 0  # undecodable frames dropped


@dataclass(slots=True)
class _Peer(Generic[M]):
    node_id: str
    address: str
    pending: deque[GroupMessage[M]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # Plain counters (a frozen PeerStats rebuilt per batch cost a visible share of a send).
    batches_sent: int = 0
    messages_sent: int = 0
    messages_dropped: int = 0
    streams_opened: int = 0
    failures: int = 0
    bytes_sent: int = 0
    batches_received: int = 0
    messages_received: int = 0
    bytes_received: int = 0
    batches_rejected: int = 0

    @property
    def stats(self) -> PeerStats:
        return PeerStats(self.batches_sent, self.messages_sent, self.messages_dropped,
                         self.streams_opened, self.failures, self.bytes_sent,
                         self.batches_received, self.messages_received, self.bytes_received,
                         self.batches_rejected)

    def count(self, batches_sent: int = 0, messages_sent: int = 0, messages_dropped: int = 0,
              streams_opened: int = 0, failures: int = 0) -> None:
        self.batches_sent += batches_sent
        self.messages_sent += messages_sent
        self.messages_dropped += messages_dropped
        self.streams_opened += streams_opened
        self.failures += failures


class GrpcRaftTransport(Generic[M]):
    """Transport over gRPC. `listen_address` may use port 0; `port` tells the bound port."""

    def __init__(self, node_id: str, listen_address: str, peers: Mapping[str, str],
                 codec: BatchCodec[M], rng: random.Random,
                 config: TransportConfig = TransportConfig(), sleep: Sleep = asyncio.sleep,
                 services: Sequence[Callable[[grpc.aio.Server], None]] = ()) -> None:
        self._node_id = node_id
        self._services = tuple(services)  # more servicers on the same server (Storage)
        self._listen = listen_address
        self._codec = codec
        self._rng = rng
        self._config = config
        self._sleep = sleep
        self._peers: dict[str, _Peer[M]] = {n: _Peer(n, a) for n, a in peers.items()
                                             if n != node_id}
        self._receiver: Receiver[M] | None = None
        self._server: grpc.aio.Server | None = None
        self._port = 0
        self._open = False

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def port(self) -> int:
        return self._port

    def set_receiver(self, receiver: Receiver[M]) -> None:
        self._receiver = receiver

    def set_peer(self, node_id: str, address: str) -> None:
        """Add a peer or change its address (the open stream, if any, is replaced)."""
        peer = self._peers.get(node_id)
        if peer is not None and peer.address == address:
            return
        if peer is not None and peer.task is not None:
            peer.task.cancel()
        self._peers[node_id] = _Peer(node_id, address)
        if self._open:
            self._start_sender(node_id)

    def send(self, to_node: str, messages: Sequence[GroupMessage[M]]) -> None:
        peer = self._peers.get(to_node)
        if peer is None or not self._open:
            return
        peer.pending.extend(messages)
        overflow = len(peer.pending) - self._config.max_pending_messages
        for _ in range(max(0, overflow)):
            peer.pending.popleft()
        if overflow > 0:
            peer.count(messages_dropped=overflow)
        peer.wake.set()

    def stats(self) -> dict[str, PeerStats]:
        return {node: peer.stats for node, peer in self._peers.items()}

    async def start(self) -> None:
        """Bind and serve; idempotent, so a caller may start it early to learn `port`."""
        if self._server is not None:
            return
        limit = self._config.max_receive_bytes or self._config.max_batch_bytes + (1 << 20)
        self._server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", self._config.keepalive_ms // 2),
            ("grpc.http2.max_ping_strikes", 0),
        ])
        raft_pb2_grpc.add_RaftTransportServicer_to_server(_Servicer(self), self._server)
        for add_service in self._services:
            add_service(self._server)
        self._port = self._server.add_insecure_port(self._listen)
        await self._server.start()
        self._open = True
        for node_id in self._peers:
            self._start_sender(node_id)

    async def close(self) -> None:
        self._open = False
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None

    # -- sending

    def _start_sender(self, node_id: str) -> None:
        peer = self._peers[node_id]
        peer.task = asyncio.create_task(self._run_sender(node_id, peer),
                                        name=f"raft-send-{self._node_id}->{node_id}")

    async def _run_sender(self, node_id: str, peer: _Peer[M]) -> None:
        failures = 0
        while self._open:
            await self._wait_for_work(peer)
            sent_before = peer.batches_sent
            try:
                await self._stream_to(peer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # peer down or stream broken: back off, then reconnect
                peer.count(failures=1)
                log.debug("raft stream %s -> %s failed: %r", self._node_id, node_id, exc)
            # a stream that carried batches was healthy: start the backoff over
            failures = 0 if peer.batches_sent > sent_before else min(failures + 1, 30)
            await self._sleep(self._backoff_s(failures))

    async def _stream_to(self, peer: _Peer[M]) -> None:
        """Open one stream and write batches into it until it breaks."""
        async with grpc.aio.insecure_channel(peer.address, options=self._channel_options()) as ch:
            call = raft_pb2_grpc.RaftTransportStub(ch).Stream()
            # Wake the sender when the stream dies, so it reconnects before draining the queue.
            call.add_done_callback(lambda _: peer.wake.set())
            peer.count(streams_opened=1)
            try:
                while True:
                    await self._wait_for_work(peer)
                    if call.done():
                        raise ConnectionError("stream ended")
                    batch, count = self._drain(peer)
                    try:
                        await call.write(batch)
                    except BaseException:
                        peer.count(messages_dropped=count)
                        raise
                    peer.batches_sent += 1
                    peer.messages_sent += count
                    peer.bytes_sent += len(batch.frame)
            finally:
                call.cancel()

    async def _wait_for_work(self, peer: _Peer[M]) -> None:
        while not peer.pending:
            peer.wake.clear()
            await peer.wake.wait()

    def _drain(self, peer: _Peer[M]) -> tuple[raft_pb2.Batch, int]:
        """One Batch of what is queued for `peer` (at least one message, then up to
        max_batch_bytes)."""
        me, to, add, pending = self._node_id, peer.node_id, self._codec.add, peer.pending
        limit = self._config.max_batch_bytes
        parts: list[bytes] = [b""]  # [0]: the codec's header
        size = count = 0
        while pending and (count == 0 or size < limit):
            size += add(parts, pending.popleft(), me, to)
            count += 1
        frame = self._codec.frame(parts, count)
        return raft_pb2.Batch(from_node=me, frame=frame), count

    def _backoff_s(self, failures: int) -> float:
        ceiling_ms = min(self._config.backoff_max_ms, self._config.backoff_min_ms * 2 ** failures)
        return ceiling_ms * self._rng.uniform(0.5, 1.0) / 1000

    def _channel_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.keepalive_time_ms", self._config.keepalive_ms),
            ("grpc.keepalive_timeout_ms", self._config.keepalive_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # we own reconnection (a fresh channel per attempt); keep gRPC's own backoff short
            ("grpc.initial_reconnect_backoff_ms", self._config.backoff_min_ms),
            ("grpc.max_reconnect_backoff_ms", self._config.backoff_max_ms),
        ]

    # -- receiving

    def _on_batch(self, batch: raft_pb2.Batch) -> None:
        receiver = self._receiver
        if receiver is None or not self._open:
            return
        sender, frame = batch.from_node, batch.frame
        peer = self._peers.get(sender)
        try:
            messages = self._codec.decode(frame, sender, self._node_id)
        except ValueError:
            if peer is not None:
                peer.batches_rejected += 1
            raise
        if peer is not None:
            peer.batches_received += 1
            peer.messages_received += len(messages)
            peer.bytes_received += len(frame)
        if messages:
            receiver(sender, messages)


class _Servicer(raft_pb2_grpc.RaftTransportServicer):
    def __init__(self, transport: GrpcRaftTransport[M]) -> None:
        self._transport = transport

    async def Stream(self, request_iterator: AsyncIterator[raft_pb2.Batch],
                     context: grpc.aio.ServicerContext) -> raft_pb2.Ack:
        async for batch in request_iterator:
            try:
                self._transport._on_batch(batch)
            except Exception:  # one undecodable batch must not end the node pair's stream
                log.exception("dropping a raft batch from %s", batch.from_node)
        return raft_pb2.Ack()


__all__ = ["GrpcRaftTransport", "BatchCodec", "TransportConfig", "PeerStats"]
