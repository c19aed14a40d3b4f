"""Three RaftDrivers, each with its own gRPC server on 127.0.0.1 and its own RocksDB, hosting
100 groups each: leaders are elected, writes commit, and idle groups cost a few batches per
heartbeat interval per node pair, not one per group."""
from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path
from typing import AsyncIterator, Sequence

from node.logstore import RocksLogEngine
from node.raft_codec import RaftCodec
from node.raft_transport import GrpcRaftTransport, TransportConfig
from replication.driver import DriverConfig, RaftDriver
from replication.raft import RaftConfig
from replication.raft.messages import Message
from tests.replication.driver_harness import KvMachine, by_id, run, wait_for_leaders, wait_until

NODES = ("n1", "n2", "n3")
GROUPS = [f"part-{i:03d}" for i in range(100)]
RAFT = RaftConfig(election_ticks=10, heartbeat_ticks=2)
TICK_MS = 50


class Node:
    def __init__(self, node_id: str, root: Path, seed: int) -> None:
        self.machine = KvMachine()
        self.engine = RocksLogEngine(root / node_id)
        self.transport: GrpcRaftTransport[Message] = GrpcRaftTransport(
            node_id, "127.0.0.1:0", {}, RaftCodec(), random.Random(seed),
            TransportConfig(backoff_min_ms=20, backoff_max_ms=200))
        self.driver = RaftDriver(node_id, self.transport, self.engine, self.machine,
                                 random.Random(seed), DriverConfig(tick_interval_ms=TICK_MS,
                                                                   raft=RAFT))


@contextlib.asynccontextmanager
async def grpc_cluster(root: Path, groups: Sequence[str]) -> AsyncIterator[list[Node]]:
    nodes = [Node(n, root, seed) for seed, n in enumerate(NODES)]
    try:
        for node in nodes:
            await node.transport.start()  # learn the ephemeral ports first
        for node in nodes:
            for other in nodes:
                if other is not node:
                    address = f"127.0.0.1:{other.transport.port}"
                    node.transport.set_peer(other.driver.node_id, address)
        for node in nodes:
            for g in groups:
                node.driver.add_group(g, NODES)
            await node.driver.start()
        yield nodes
    finally:
        for node in nodes:
            await node.driver.close()
            node.engine.close()


def test_hundred_groups_per_node_over_grpc_and_rocksdb(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with grpc_cluster(tmp_path, GROUPS) as nodes:
            drivers = [n.driver for n in nodes]
            leaders = await wait_for_leaders(drivers, GROUPS, 30)
            assert len(set(leaders.values())) >= 2  # leadership spread over the nodes

            ids = by_id(drivers)
            results = await asyncio.gather(*(ids[leaders[g]].propose(g, b"k=" + g.encode())
                                             for g in GROUPS))
            assert all(isinstance(r, int) for r in results)
            await wait_until(lambda: all(n.machine.data[g].get(b"k") == g.encode()
                                         for n in nodes for g in GROUPS), 15, "replicas to apply")

            await asyncio.sleep(4 * TICK_MS / 1000)  # let the commit's appends settle
            before = {n.driver.node_id: n.transport.stats() for n in nodes}
            ticks0 = nodes[0].driver.stats().ticks
            await wait_until(lambda: nodes[0].driver.stats().ticks >= ticks0 + 20, 10, "20 ticks")
            intervals = (nodes[0].driver.stats().ticks - ticks0) / RAFT.heartbeat_ticks
            for node in nodes:
                for peer, stats in node.transport.stats().items():
                    sent = stats.batches_sent - before[node.driver.node_id][peer].batches_sent
                    per_interval = sent / intervals
                    # ~66 groups shared with each peer; uncoalesced that is >= 66 per interval
                    assert 0 < per_interval <= 3, (node.driver.node_id, peer, per_interval)

        # Everything acknowledged is on disk: reopen the RocksDBs and look.
        for n in NODES:
            engine = RocksLogEngine(tmp_path / n)
            try:
                assert sorted(engine.groups()) == GROUPS
                for g in GROUPS[:10]:
                    store = engine.store(g)
                    held = store.entries(store.first_index(), store.last_index() + 1)
                    data = [e.data for e in held]
                    assert b"k=" + g.encode() in data
            finally:
                engine.close()
    run(scenario, 60)
