"""The gRPC node client against a tiny in-test Storage server on 127.0.0.1: many concurrent
requests share one Execute stream, in batches, answered out of order; broken streams, silent
nodes and unreachable nodes end in the documented Reply kinds."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import grpc
import grpc.aio

from proto import storage_pb2, storage_pb2_grpc
from router.nodes import LOST, TIMEOUT, UNAVAILABLE, GrpcTransport, StorageRequest, StreamConfig


class Storage(storage_pb2_grpc.StorageServicer):
    """Echoes each request's body; answers every batch in reverse order; ignores "hang";
    ends the stream on "break"."""

    def __init__(self) -> None:
        self.streams = 0
        self.batch_sizes: list[int] = []

    async def Execute(
            self, request_iterator: AsyncIterator[storage_pb2.RequestBatch],
            context: grpc.aio.ServicerContext) -> AsyncIterator[storage_pb2.ResponseBatch]:
        self.streams += 1
        async for batch in request_iterator:
            self.batch_sizes.append(len(batch.requests))
            if any(r.body == b"break" for r in batch.requests):
                await context.abort(grpc.StatusCode.INTERNAL, "breaking the stream")
            yield storage_pb2.ResponseBatch(responses=[
                storage_pb2.Response(request_id=r.request_id, body=r.body)
                for r in reversed(batch.requests) if r.body != b"hang"])


async def start_server() -> tuple[grpc.aio.Server, Storage, str]:
    service = Storage()
    server = grpc.aio.server()
    storage_pb2_grpc.add_StorageServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, service, f"127.0.0.1:{port}"


def request(body: bytes) -> StorageRequest:
    return StorageRequest("Get", "p0000000000000001", body)


def test_many_concurrent_requests_share_one_stream_in_batches() -> None:
    async def scenario() -> None:
        server, service, address = await start_server()
        transport = GrpcTransport({"n1": address})
        try:
            bodies = [f"request-{i}".encode() for i in range(2000)]
            replies = await asyncio.gather(*(transport.execute("n1", request(b), 5000)
                                             for b in bodies))
            assert [r.body for r in replies] == bodies
            assert all(r.ok for r in replies)
            assert service.streams == 1
            assert sum(service.batch_sizes) == 2000
            assert len(service.batch_sizes) < 200  # batched: far fewer messages than requests
        finally:
            await transport.close()
            await server.stop(None)

    asyncio.run(scenario())


def test_a_broken_stream_loses_only_what_was_in_flight_and_reconnects() -> None:
    async def scenario() -> None:
        server, service, address = await start_server()
        transport = GrpcTransport({"n1": address})
        try:
            assert (await transport.execute("n1", request(b"first"), 5000)).body == b"first"
            broken = await transport.execute("n1", request(b"break"), 5000)
            assert broken.error_type == LOST
            again = await transport.execute("n1", request(b"after"), 5000)
            assert again.ok and again.body == b"after"
            assert service.streams == 2
        finally:
            await transport.close()
            await server.stop(None)

    asyncio.run(scenario())


def test_a_silent_node_times_out_without_blocking_others() -> None:
    async def scenario() -> None:
        server, _, address = await start_server()
        transport = GrpcTransport({"n1": address})
        try:
            hung, fine = await asyncio.gather(transport.execute("n1", request(b"hang"), 200),
                                              transport.execute("n1", request(b"fine"), 5000))
            assert hung.error_type == TIMEOUT
            assert fine.ok and fine.body == b"fine"
        finally:
            await transport.close()
            await server.stop(None)

    asyncio.run(scenario())


def test_an_unreachable_node_is_unavailable_quickly_and_then_fails_fast() -> None:
    async def scenario() -> None:
        # Port 1 on loopback: nothing listens there, connections are refused.
        config = StreamConfig(connect_timeout_ms=300, reconnect_backoff_ms=(500, 1000))
        transport = GrpcTransport({"n1": "127.0.0.1:1"}, config)
        try:
            started = time.monotonic()
            first = await transport.execute("n1", request(b"x"), 5000)
            assert first.error_type == UNAVAILABLE
            assert time.monotonic() - started < 2
            started = time.monotonic()
            second = await transport.execute("n1", request(b"y"), 5000)
            assert second.error_type == UNAVAILABLE
            assert time.monotonic() - started < 0.1  # within the backoff: no new connect wait
            unknown = await transport.execute("n9", request(b"z"), 5000)
            assert unknown.error_type == UNAVAILABLE
        finally:
            await transport.close()

    asyncio.run(scenario())
