"""Quiescence in the driver: idle groups are parked (not ticked, no heartbeats), a few liveness
pings per node pair keep their followers informed, and anything that uses a group wakes it.
Three RaftDrivers in one event loop over the loopback transport; counts are per tick of the
drivers' own clocks, never per wall-clock second."""
from __future__ import annotations

import logging
import random
from typing import AsyncContextManager, Sequence

import pytest

from replication.driver import LIVENESS_GROUP, DriverConfig, RaftDriver
from replication.raft import MessageType, PeerLiveness, RaftConfig
from replication.raft.messages import Message
from replication.transport import GroupMessage
from tests.replication.driver_harness import (
    NODES,
    LoopbackCluster,
    agreed_leader,
    run,
    started,
    wait_for_leaders,
    wait_until,
)

TICK_MS = 10
RAFT = RaftConfig(election_ticks=10, heartbeat_ticks=2, quiesce_after_ticks=3)
PING_TICKS = PeerLiveness.for_raft(RAFT).ping_ticks


class Cluster(LoopbackCluster):
    def all_parked(self, drivers: Sequence[RaftDriver] | None = None) -> bool:
        return all(d.stats().quiesced_groups == len(self.groups)
                   for d in drivers or self.drivers)

    async def quiesce(self, timeout_s: float = 20) -> dict[str, str]:
        leaders = await wait_for_leaders(self.drivers, self.groups, 15)
        await wait_until(self.all_parked, timeout_s, "every group parked on every node")
        return leaders


def cluster(groups: Sequence[str], seed: int) -> AsyncContextManager[Cluster]:
    return started(Cluster(groups, seed, DriverConfig(tick_interval_ms=TICK_MS, raft=RAFT)))


async def wait_ticks(driver: RaftDriver, ticks: int, timeout_s: float = 20) -> int:
    start = driver.stats().ticks
    await wait_until(lambda: driver.stats().ticks >= start + ticks, timeout_s, f"{ticks} ticks")
    return driver.stats().ticks - start


def test_an_idle_node_with_many_groups_sends_only_pings_and_ticks_no_group() -> None:
    async def scenario() -> None:
        groups = [f"p{i}" for i in range(24)]
        async with cluster(groups, seed=11) as c:
            leaders = await c.quiesce()
            assert {leaders[g] for g in groups} == set(NODES)  # each node leads some groups
            await wait_ticks(c.drivers[0], 2)  # let the last quiesce heartbeats land
            before = {d.node_id: d.stats() for d in c.drivers}
            batches_before = dict(c.net.batches_sent)
            ticks = await wait_ticks(c.drivers[0], 20 * PING_TICKS)
            for d in c.drivers:
                now, then = d.stats(), before[d.node_id]
                assert now.group_ticks == then.group_ticks  # nothing ticked: all parked
                assert now.quiesced_groups == len(groups)
                sent = now.messages_sent - then.messages_sent
                assert sent == now.pings_sent - then.pings_sent  # only pings, one per batch
                assert now.dead_leader_wakes == then.dead_leader_wakes == 0
            # One ping per node pair and direction per PING_TICKS (the tick counts of the three
            # drivers differ by a tick or two), against a heartbeat batch every 2 ticks awake.
            for pair, count in c.net.batches_sent.items():
                per_pair = count - batches_before.get(pair, 0)
                assert per_pair <= ticks / PING_TICKS + 3, (pair, per_pair, ticks)
                assert per_pair >= ticks / PING_TICKS / 2, (pair, per_pair, ticks)
            assert {d.leader(g) for d in c.drivers for g in groups} == set(NODES)
    run(scenario, 60)


def test_a_proposal_wakes_its_group_and_it_parks_again() -> None:
    async def scenario() -> None:
        async with cluster(["p0", "p1"], seed=12) as c:
            leaders = await c.quiesce()
            leader = c.by_id[leaders["p0"]]
            assert leader.quiesced("p0")
            assert await leader.propose("p0", b"k=v")
            await wait_until(lambda: all(m.data["p0"].get(b"k") == b"v"
                                         for m in c.machines.values()), 10, "applied everywhere")
            await wait_until(c.all_parked, 20, "parked again")
            assert all(d.stats().groups_woken >= 1 for d in c.drivers)
    run(scenario, 60)


def test_the_first_consistent_read_of_a_parked_leader_goes_through_read_index() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=13) as c:
            leaders = await c.quiesce()
            leader = c.by_id[leaders["p0"]]
            assert not leader.lease_read_ok("p0")  # a quiesced leader holds no lease
            assert leader.quiesced("p0")  # ... and asking did not wake it
            await leader.read_index("p0")  # wakes the group, one quorum round
            assert not leader.quiesced("p0")
            # A reader that keeps reading as node/service.py does (lease, else ReadIndex) gets
            # the lease back (a new leader waits an election timeout for its first one), and
            # its lease reads keep the group awake.
            for _ in range(500):  # bounded; a read per tick
                if leader.lease_read_ok("p0"):
                    break
                await leader.read_index("p0")
                await wait_ticks(leader, 1)
            assert leader.lease_read_ok("p0")
            by_lease = 0
            for _ in range(4 * RAFT.quiesce_after_ticks):
                if leader.lease_read_ok("p0"):
                    by_lease += 1
                else:  # the lease lapsed (a stalled loop, say): the reader falls back
                    await leader.read_index("p0")
                assert not leader.quiesced("p0")
                await wait_ticks(leader, 1)
            assert by_lease > 2 * RAFT.quiesce_after_ticks
    run(scenario, 60)


def test_followers_of_a_dead_leaders_node_elect_a_new_leader() -> None:
    async def scenario() -> None:
        groups = [f"p{i}" for i in range(6)]
        async with cluster(groups, seed=14) as c:
            leaders = await c.quiesce()
            dead = leaders["p0"]
            led = [g for g in groups if leaders[g] == dead]
            c.net.isolate(dead)  # as good as dead to the others: nothing comes from it
            others = [d for d in c.drivers if d.node_id != dead]
            await wait_until(lambda: all(d.leader(g) not in (None, dead)
                                         and len({o.leader(g) for o in others}) == 1
                                         for d in others for g in led), 20, "new leaders")
            assert all(d.stats().dead_leader_wakes >= len(led) for d in others)
            for g in led:
                new = c.by_id[others[0].leader(g) or ""]
                assert await new.propose(g, b"after=failover")
            # groups led by live nodes were not disturbed
            assert all(d.leader(g) == leaders[g] for d in others for g in groups if g not in led)
    run(scenario, 60)


def test_a_restarted_leader_node_is_noticed_by_its_first_ping(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        groups = [f"p{i}" for i in range(6)]
        async with cluster(groups, seed=17) as c:
            leaders = await c.quiesce()
            node = leaders["p0"]
            old = c.by_id[node]
            await old.close()  # kill; its state survives in the engine, as on a disk
            new = RaftDriver(node, c.net.transport(node), c.engines[node], c.machines[node],
                             random.Random(99), c.config)
            for g in groups:
                new.add_group(g, NODES)
            c.drivers[c.drivers.index(old)] = new  # by_id follows
            await new.start()
            await wait_until(lambda: all(agreed_leader(c.drivers, g) for g in groups), 20,
                             "every group led again")
            assert await c.by_id[agreed_leader(c.drivers, "p0") or ""].propose("p0", b"k=v")
    with caplog.at_level(logging.INFO, logger="replication.driver"):
        run(scenario, 60)
    assert "it restarted" in caplog.text


def test_quiesced_followers_of_a_live_leader_do_not_campaign() -> None:
    async def scenario() -> None:
        groups = [f"p{i}" for i in range(6)]
        async with cluster(groups, seed=15) as c:
            leaders = await c.quiesce()
            terms = {(d.node_id, g): d._groups[g].core.term for d in c.drivers for g in groups}
            await wait_ticks(c.drivers[0], 10 * RAFT.election_ticks)
            assert {(d.node_id, g): d._groups[g].core.term
                    for d in c.drivers for g in groups} == terms
            assert all(d.leader(g) == leaders[g] for d in c.drivers for g in groups)
            assert all(d.stats().dead_leader_wakes == 0 for d in c.drivers)
    run(scenario, 60)


def test_a_liveness_ping_counts_as_a_sign_of_life_and_as_no_group() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=16) as c:
            await wait_for_leaders(c.drivers, ["p0"], 15)
            d = c.drivers[0]
            ping = GroupMessage(LIVENESS_GROUP, Message(MessageType.HEARTBEAT, "n2", "n1", 0))
            d._receive("n2", [ping])
            await wait_ticks(d, 1)
            assert d.stats().messages_unknown_group == 0
            assert d._liveness.silent_ticks("n2", d._ticks_done) <= 2
    run(scenario, 30)

