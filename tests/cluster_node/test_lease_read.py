"""RaftDriver.lease_read_ok, which the node's consistent reads use to skip a loop turn: true on a
leader under lease that has applied everything committed, false on followers and while a new
leader waits out the old lease."""
from __future__ import annotations

import random

from replication.driver import DriverConfig, MemoryLogEngine, RaftDriver
from replication.raft import RaftConfig
from replication.raft.messages import Message
from replication.transport import LoopbackNetwork
from tests.replication.driver_harness import KvMachine, by_id, run, wait_for_leaders, wait_until

NODES = ("n1", "n2", "n3")
# 50 ms ticks: the new leader's lease-less window (one election timeout) is 500 ms, far longer
# than the gap between winning and the first check below.
CONFIG = DriverConfig(tick_interval_ms=50, raft=RaftConfig(election_ticks=10, heartbeat_ticks=2))


def test_lease_read_ok_only_on_a_leader_under_lease() -> None:
    async def scenario() -> None:
        net: LoopbackNetwork[Message] = LoopbackNetwork()
        drivers = [RaftDriver(n, net.transport(n), MemoryLogEngine(), KvMachine(),
                              random.Random(i), CONFIG) for i, n in enumerate(NODES)]
        for d in drivers:
            d.add_group("g", NODES)
            await d.start()
        try:
            leader = by_id(drivers)[(await wait_for_leaders(drivers, ["g"], 10))["g"]]
            # A new leader serves no lease reads until an election timeout has passed.
            assert not leader.lease_read_ok("g")
            await wait_until(lambda: leader.lease_read_ok("g"), 5, "the leader's lease")
            await leader.propose("g", b"k=v")
            await wait_until(lambda: leader.lease_read_ok("g"), 5, "the lease after a write")
            assert not any(d.lease_read_ok("g") for d in drivers if d is not leader)
            for d in drivers:
                if d is not leader:
                    await d.close()
            # Without its followers the lease runs out (then reads need a quorum round).
            await wait_until(lambda: not leader.lease_read_ok("g"), 5, "the lease to expire")
        finally:
            for d in drivers:
                await d.close()
    run(scenario, 30)
