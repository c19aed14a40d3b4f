"""The gRPC Raft transport on 127.0.0.1: delivery, batching, a peer that is down, then back."""
from __future__ import annotations

import asyncio
import random
import struct
import time
from typing import Callable, Coroutine, Sequence, TypeVar

import grpc

from node.raft_transport import GrpcRaftTransport, TransportConfig
from proto import raft_pb2, raft_pb2_grpc
from replication.transport import GroupMessage

T = TypeVar("T")
TEST_TIMEOUT_S = 20.0


class BytesCodec:
    """Messages are bytes; a frame is each (group, payload) as two length-prefixed fields. The
    receiver learns the sender and itself from the batch, as node/raft_codec.py does."""

    def add(self, parts: list[bytes], message: GroupMessage[bytes], from_node: str,
            to_node: str) -> int:
        group = message.group.encode()
        part = (struct.pack(">H", len(group)) + group
                + struct.pack(">I", len(message.message)) + message.message)
        parts.append(part)
        return len(part)

    def frame(self, parts: list[bytes], count: int) -> bytes:
        parts[0] = struct.pack(">I", count)
        return b"".join(parts)

    def decode(self, frame: bytes, from_node: str, to_node: str) -> list[GroupMessage[bytes]]:
        if not frame.startswith(b"\x00"):  # any count below 2**24; garbage is refused
            raise ValueError("not a test frame")
        (count,) = struct.unpack_from(">I", frame)
        pos, out = 4, []
        for _ in range(count):
            (size,) = struct.unpack_from(">H", frame, pos)
            group = frame[pos + 2:pos + 2 + size].decode()
            pos += 2 + size
            (size,) = struct.unpack_from(">I", frame, pos)
            out.append(GroupMessage(group, frame[pos + 4:pos + 4 + size]))
            pos += 4 + size
        return out


class Inbox:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[GroupMessage[bytes]]]] = []

    def __call__(self, from_node: str, messages: Sequence[GroupMessage[bytes]]) -> None:
        self.batches.append((from_node, list(messages)))

    def payloads(self) -> list[bytes]:
        return [m.message for _, batch in self.batches for m in batch]


def run(make: Callable[[], Coroutine[object, object, T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), TEST_TIMEOUT_S)
    return asyncio.run(bounded())


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


def transport(node: str, peers: dict[str, str], port: int = 0) -> GrpcRaftTransport[bytes]:
    config = TransportConfig(backoff_min_ms=10, backoff_max_ms=100, max_pending_messages=100_000)
    return GrpcRaftTransport(node, f"127.0.0.1:{port}", peers, BytesCodec(), random.Random(1),
                             config)


async def started(*transports: GrpcRaftTransport[bytes]) -> None:
    for t in transports:
        await t.start()


async def pair() -> tuple[GrpcRaftTransport[bytes], GrpcRaftTransport[bytes], Inbox, Inbox]:
    a, b = transport("a", {}), transport("b", {})
    inbox_a, inbox_b = Inbox(), Inbox()
    a.set_receiver(inbox_a)
    b.set_receiver(inbox_b)
    await started(a, b)
    a.set_peer("b", f"127.0.0.1:{b.port}")
    b.set_peer("a", f"127.0.0.1:{a.port}")
    return a, b, inbox_a, inbox_b


def test_batches_flow_both_ways_in_order() -> None:
    async def scenario() -> None:
        a, b, inbox_a, inbox_b = await pair()
        try:
            for i in range(50):
                a.send("b", [GroupMessage(f"p{i % 5}", b"m%d" % i),
                             GroupMessage("p0", b"hb%d" % i)])
                b.send("a", [GroupMessage("p1", b"r%d" % i)])
                await asyncio.sleep(0)  # let senders interleave with the sends
            await wait_until(lambda: len(inbox_b.payloads()) == 100)
            await wait_until(lambda: len(inbox_a.payloads()) == 50)
            got = inbox_b.payloads()
            assert [p for p in got if p.startswith(b"m")] == [b"m%d" % i for i in range(50)]
            assert [p for p in got if p.startswith(b"hb")] == [b"hb%d" % i for i in range(50)]
            assert inbox_a.payloads() == [b"r%d" % i for i in range(50)]
            assert {frm for frm, _ in inbox_b.batches} == {"a"}
            assert a.stats()["b"].messages_sent == 100
            # what one side sent, the other counted as received
            await wait_until(lambda: b.stats()["a"].messages_received == 100)
            assert b.stats()["a"].batches_received == a.stats()["b"].batches_sent
            assert b.stats()["a"].bytes_received == a.stats()["b"].bytes_sent > 0
        finally:
            await a.close()
            await b.close()
    run(scenario)


def test_sends_between_writes_coalesce_into_one_batch() -> None:
    async def scenario() -> None:
        a, b, _, inbox_b = await pair()
        try:
            a.send("b", [GroupMessage("p0", b"warm-up")])
            await wait_until(lambda: len(inbox_b.batches) == 1)
            for i in range(1000):  # 1000 groups' heartbeats, queued without yielding
                a.send("b", [GroupMessage(f"p{i}", b"hb")])
            await wait_until(lambda: len(inbox_b.payloads()) == 1001)
            assert len(inbox_b.batches) == 2
            assert a.stats()["b"].batches_sent == 2
            assert [m.group for m in inbox_b.batches[1][1]] == [f"p{i}" for i in range(1000)]
        finally:
            await a.close()
            await b.close()
    run(scenario)


def test_send_never_blocks_and_reconnects_when_the_peer_comes_back() -> None:
    async def scenario() -> None:
        b = transport("b", {})
        inbox_b = Inbox()
        b.set_receiver(inbox_b)
        await b.start()
        port = b.port
        await b.close()  # b is down; its port is known
        a = transport("a", {"b": f"127.0.0.1:{port}"})
        await a.start()
        try:
            start = time.perf_counter()
            for i in range(200_000):
                a.send("b", [GroupMessage("p0", b"x")])
            assert time.perf_counter() - start < 5.0  # nothing waited on the network
            # half overflowed the bounded queue at once, the rest died with the failed stream
            await wait_until(lambda: a.stats()["b"].messages_dropped == 200_000)
            assert a.stats()["b"].failures >= 1
            assert a.stats()["b"].messages_sent == 0
            b = transport("b", {}, port=port)
            b.set_receiver(inbox_b)
            await b.start()
            a.send("b", [GroupMessage("p0", b"after")])
            await wait_until(lambda: b"after" in inbox_b.payloads())
            assert a.stats()["b"].streams_opened >= 2
        finally:
            await a.close()
            await b.close()
    run(scenario)


def test_restarted_peer_gets_messages_on_a_new_stream() -> None:
    async def scenario() -> None:
        a, b, _, inbox_b = await pair()
        try:
            a.send("b", [GroupMessage("p0", b"one")])
            await wait_until(lambda: inbox_b.payloads() == [b"one"])
            port = b.port
            await b.close()
            b = transport("b", {}, port=port)
            inbox_b2 = Inbox()
            b.set_receiver(inbox_b2)
            await b.start()
            for i in range(200):  # the first sends may die with the old stream; Raft resends
                a.send("b", [GroupMessage("p0", b"two")])
                if inbox_b2.payloads():
                    break
                await asyncio.sleep(0.02)
            assert b"two" in inbox_b2.payloads()
        finally:
            await a.close()
            await b.close()
    run(scenario)


def test_unknown_destination_is_ignored() -> None:
    async def scenario() -> None:
        a = transport("a", {})
        await a.start()
        try:
            a.send("nobody", [GroupMessage("p0", b"x")])
            assert a.stats() == {}
        finally:
            await a.close()
    run(scenario)


def test_an_undecodable_frame_is_dropped_and_the_stream_goes_on() -> None:
    async def scenario() -> None:
        a, b, _, inbox_b = await pair()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as channel:
                call = raft_pb2_grpc.RaftTransportStub(channel).Stream()
                await call.write(raft_pb2.Batch(from_node="a", frame=b"\xffgarbage"))
                good = BytesCodec()
                parts = [b""]
                good.add(parts, GroupMessage("p0", b"fine"), "a", "b")
                await call.write(raft_pb2.Batch(from_node="a", frame=good.frame(parts, 1)))
                await wait_until(lambda: inbox_b.payloads() == [b"fine"])
                assert b.stats()["a"].batches_rejected == 1
                assert b.stats()["a"].batches_received == 1
                call.cancel()
        finally:
            await a.close()
            await b.close()
    run(scenario)
