"""A node restarts on its RocksDB: its groups come back from disk and its state machine is
rebuilt from the snapshot and the log (the applied index is not persisted, so it replays)."""
from __future__ import annotations

import asyncio
import random
from pathlib import Path

from node.logstore import RocksLogEngine
from replication.driver import DriverConfig, RaftDriver
from replication.raft import RaftConfig
from replication.raft.messages import Message
from replication.transport import LoopbackNetwork
from tests.replication.driver_harness import KvMachine, by_id, run, wait_for_leaders, wait_until

NODES = ("n1", "n2", "n3")
GROUPS = ["p0", "p1", "p2"]
CONFIG = DriverConfig(tick_interval_ms=10, raft=RaftConfig(election_ticks=10, heartbeat_ticks=2),
                      compact_after_entries=15)


def test_restarted_node_recovers_its_groups_from_rocksdb(tmp_path: Path) -> None:
    async def scenario() -> None:
        net: LoopbackNetwork[Message] = LoopbackNetwork()
        engines = {n: RocksLogEngine(tmp_path / n) for n in NODES}
        machines = {n: KvMachine() for n in NODES}

        def make(n: str, seed: int) -> RaftDriver:
            d = RaftDriver(n, net.transport(n), engines[n], machines[n], random.Random(seed),
                           CONFIG)
            for g in GROUPS:
                d.add_group(g, NODES)
            return d

        drivers = [make(n, i) for i, n in enumerate(NODES)]
        for d in drivers:
            await d.start()
        try:
            leaders = await wait_for_leaders(drivers, GROUPS, 10)
            ids = by_id(drivers)
            await asyncio.gather(*(ids[leaders[g]].propose(g, b"k%d=%d" % (i, i))
                                   for g in GROUPS for i in range(40)))
            want = {b"k%d" % i: b"%d" % i for i in range(40)}
            await wait_until(lambda: all(m.data[g] == want for m in machines.values()
                                         for g in GROUPS), 10, "all replicas to apply")

            victim = "n2"
            await ids[victim].close()
            engines[victim].close()
            engines[victim] = RocksLogEngine(tmp_path / victim)
            assert engines[victim].groups() == GROUPS
            assert engines[victim].store("p0").first_index() > 1  # it compacted before
            machines[victim] = KvMachine()
            drivers[1] = make(victim, 99)
            await drivers[1].start()
            await wait_until(lambda: all(machines[victim].data[g] == want for g in GROUPS), 10,
                             "the restarted replica to rebuild its state")
            leaders = await wait_for_leaders(drivers, GROUPS, 10)
            ids = by_id(drivers)
            await asyncio.gather(*(ids[leaders[g]].propose(g, b"after=1") for g in GROUPS))
            await wait_until(lambda: all(machines[victim].data[g].get(b"after") == b"1"
                                         for g in GROUPS), 10, "new writes on the restarted node")
        finally:
            for d in drivers:
                await d.close()
            for e in engines.values():
                e.close()
    run(scenario, 40)
