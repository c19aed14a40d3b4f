"""Two in-process regions (FakeRegion) joined by two real replicators over gRPC on 127.0.0.1.

Everything runs on one asyncio loop: the regions answer through the router's StorageTransport
seam, the replicators talk to each other through real `Ship` streams. `kill` drops a replicator
without flushing its checkpoints or closing anything cleanly, which is what kill -9 leaves.
"""
from __future__ import annotations

import asyncio
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterator

import grpc.aio

from dynalab.topology import AZ, NodeSpec, Region, RouterSpec, Topology
from proto import replicator_pb2_grpc
from replication.replicator.peer import SERVER_OPTIONS, PeerConfig
from replication.replicator.process import Replicator, ReplicatorConfig
from replication.replicator.shipper import ShipperConfig
from router.catalog import WatchConfig
from tests.global_tables.fake_region import FakeRegion

__all__ = ["Pair", "FAST", "eventually", "free_ports", "two_regions", "run"]

A, B = "us-east-1", "eu-west-1"
FAST = ReplicatorConfig(
    shipper=ShipperConfig(poll_idle_ms=20, poll_busy_ms=5, backoff_ms=(10, 100), read_limit=50,
                          batch_records=100, max_buffered_records=500, stream_wait_ms=2000,
                          stream_wait_margin_ms=500),
    peer=PeerConfig(connect_timeout_ms=300, ack_timeout_ms=2000),
    catalog_watch=WatchConfig(wait_ms=2000, margin_ms=500, min_interval_ms=100,
                              backoff_ms=(10, 100)),
    reconcile_ms=100, checkpoint_flush_ms=50, lag_write_ms=200, backfill_settle_ms=50)


def free_ports(count: int) -> list[int]:
    """Distinct free ports (all held open at once while picking, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _region(name: str, prefix: str, ports: Iterator[int]) -> Region:
    # Only the replicator port is ever bound; the others must merely be distinct.
    azs = tuple(AZ(f"{name}{x}", (NodeSpec(f"{prefix}-{x}1", name, f"{name}{x}",
                                           grpc_port=next(ports)),)) for x in "abc")
    return Region(name, azs, (RouterSpec(f"{prefix}-router", name, f"{name}a",
                                         http_port=next(ports)),),
                  replicator_port=next(ports))


def two_regions() -> Topology:
    ports = iter(free_ports(10))
    return Topology((_region(A, "use1", ports), _region(B, "euw1", ports)), vnodes=4)


@dataclass
class Pair:
    topology: Topology
    data_dir: Path
    regions: dict[str, FakeRegion]
    config: ReplicatorConfig = FAST
    replicators: dict[str, Replicator] = field(default_factory=dict)
    servers: dict[str, grpc.aio.Server] = field(default_factory=dict)

    @classmethod
    def create(cls, data_dir: Path, config: ReplicatorConfig = FAST) -> Pair:
        topology = two_regions()
        regions = {r.name: FakeRegion(topology, r.name) for r in topology.regions}
        return cls(topology, data_dir, regions, config)

    async def start(self, name: str) -> Replicator:
        replicator = Replicator(self.topology, name, self.data_dir, None, self.regions[name],
                                self.config)
        server = grpc.aio.server(options=SERVER_OPTIONS)
        replicator_pb2_grpc.add_ReplicatorServicer_to_server(replicator.service, server)
        spec = self.topology.region(name)
        server.add_insecure_port(f"127.0.0.1:{spec.replicator_port}")
        await server.start()
        await replicator.start(wait_ms=2000)
        self.replicators[name], self.servers[name] = replicator, server
        return replicator

    async def start_all(self) -> None:
        for region in self.regions:
            await self.start(region)

    async def stop(self, name: str) -> None:
        await self.servers.pop(name).stop(grace=None)
        await self.replicators.pop(name).stop()

    async def kill(self, name: str) -> None:
        """As kill -9 leaves it: no checkpoint flush, no goodbye on the streams."""
        replicator = self.replicators.pop(name)
        await self.servers.pop(name).stop(grace=None)
        await replicator.halt()

    async def stop_all(self) -> None:
        for name in list(self.replicators):
            await self.stop(name)


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str,
                     timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def run(scenario: Callable[[], Awaitable[None]], timeout_s: float = 60.0) -> None:
    """asyncio.run with a bound: past `timeout_s` every task's stack is printed (to see what
    hangs) and the scenario is cancelled, failing the test."""
    async def bounded() -> None:
        task = asyncio.ensure_future(scenario())
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            _dump_tasks()
            task.cancel()
            raise AssertionError(f"the scenario took more than {timeout_s} s")
        task.result()
    asyncio.run(bounded())


def _dump_tasks() -> None:
    for other in asyncio.all_tasks():
        frames = other.get_stack(limit=12)
        print(f"--- {other.get_name()} {other.get_coro()!r}", file=sys.stderr)
        for frame in frames:
            print(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}",
                  file=sys.stderr)
