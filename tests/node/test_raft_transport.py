"""The gRPC Raft transport on 127.0.0.1: delivery, batching, a peer that is down, then back."""
from __future__ import annotations

import asyncio
import random
import time
from typing import Callable, Coroutine, Sequence, TypeVar

from node.raft_transport import GrpcRaftTransport, TransportConfig
from proto import raft_pb2
from replication.transport import GroupMessage

T = TypeVar("T")
TEST_TIMEOUT_S = 20.0


class BytesCodec:
    """Messages are bytes; those starting with b"hb" ride in Batch.heartbeats."""

    def encode(self, message: GroupMessage[bytes]) -> tuple[raft_pb2.GroupMessage, bool]:
        pb = raft_pb2.GroupMessage(group=message.group,
                                   message=raft_pb2.Message(context=message.message))
        return pb, message.message.startswith(b"hb")

    def decode(self, pb: raft_pb2.GroupMessage, from_node: str, to_node: str,
               heartbeat: bool) -> GroupMessage[bytes]:
        assert heartbeat == pb.message.context.startswith(b"hb")
        return GroupMessage(pb.group, pb.message.context)


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
