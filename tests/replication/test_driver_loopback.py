"""Three RaftDrivers in one event loop over the loopback transport."""
from __future__ import annotations

import asyncio
import random
import threading
from typing import AsyncContextManager, Sequence

import pytest

from replication.driver import DriverConfig, GroupWrite, MemoryLogEngine, NotLeader, RaftDriver
from replication.raft import RaftConfig
from replication.raft.messages import Message
from replication.transport import LoopbackNetwork
from tests.replication.driver_harness import (
    NODES,
    KvMachine,
    LoopbackCluster,
    run,
    started,
    wait_for_leaders,
    wait_until,
)

TICK_MS = 10
RAFT = RaftConfig(election_ticks=10, heartbeat_ticks=2)


class GatedEngine(MemoryLogEngine):
    """A log engine whose fsync (run in the driver's worker thread) waits, once `hold(index)`
    was called, while the group commit it makes durable includes an entry at or past `index`:
    whatever leaves the node meanwhile did not wait for that entry's fsync. Earlier fsyncs
    (of entries before `index`, possibly still on their way) pass."""

    def __init__(self) -> None:
        super().__init__()
        self._open = threading.Event()
        self._open.set()
        self._hold_from: int | None = None
        self._written = 0  # the highest entry index written so far

    def hold(self, index: int) -> None:
        self._hold_from = index
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def write_many(self, writes: Sequence[GroupWrite]) -> bool:
        for w in writes:
            if w.entries:
                self._written = max(self._written, w.entries[-1].index)
        return super().write_many(writes)

    def sync(self) -> None:
        if self._hold_from is not None and self._written >= self._hold_from:
            if not self._open.wait(10):  # bounded: a test that never releases fails, not hangs
                raise TimeoutError("never released")


# For the fsync-gated tests: a leader whose turn waits for its fsync sends no heartbeats, so on
# a loaded machine a short election timeout could move leadership in the middle of the test.
PATIENT_RAFT = RaftConfig(election_ticks=100, heartbeat_ticks=2)  # 1-2 s at TICK_MS


def cluster(groups: Sequence[str], seed: int, compact_after_entries: int = 10_000,
            engine: type[MemoryLogEngine] = MemoryLogEngine, raft: RaftConfig = RAFT
            ) -> AsyncContextManager[LoopbackCluster]:
    config = DriverConfig(tick_interval_ms=TICK_MS, raft=raft,
                          compact_after_entries=compact_after_entries)
    return started(LoopbackCluster(groups, seed, config, engine))


def _holds(c: LoopbackCluster, node: str, group: str, index: int, term: int) -> bool:
    """Has `node` written the entry (index, term)?"""
    store = c.engines[node].store(group)
    return store.last_index() >= index and store.term(index) == term


async def _settled_leader(c: LoopbackCluster, group: str) -> tuple[str, int]:
    """The group's leader and its term, once a first write of the leader is on every replica:
    the election is over everywhere (a replica that had started one of its own would not
    have taken the leader's entry)."""
    leader = (await wait_for_leaders(c.drivers, [group], 10))[group]
    index = await c.by_id[leader].propose(group, b"warm=up")
    assert isinstance(index, int)
    term = c.engines[leader].store(group).term(index)
    await wait_until(lambda: all(_holds(c, n, group, index, term) for n in NODES), 10,
                     "the first write on every replica")
    return leader, term


def _gated(c: LoopbackCluster, node: str) -> GatedEngine:
    engine = c.engines[node]
    assert isinstance(engine, GatedEngine)
    return engine


def test_a_leader_sends_its_entries_while_its_own_fsync_is_under_way() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=11, engine=GatedEngine, raft=PATIENT_RAFT) as c:
            leader, term = await _settled_leader(c, "p0")
            target = c.engines[leader].store("p0").last_index() + 1
            _gated(c, leader).hold(target)
            write = asyncio.ensure_future(c.by_id[leader].propose("p0", b"k=v"))
            followers = [n for n in NODES if n != leader]
            await wait_until(lambda: all(_holds(c, n, "p0", target, term) for n in followers), 10,
                             "the followers to hold the entry whose fsync the leader awaits")
            assert not write.done()  # the leader's turn still waits for its disk
            _gated(c, leader).release()
            assert await write == target
    run(scenario, 30)


def test_acks_leave_only_after_the_fsync() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=12, engine=GatedEngine, raft=PATIENT_RAFT) as c:
            leader, term = await _settled_leader(c, "p0")
            followers = [n for n in NODES if n != leader]
            target = c.engines[leader].store("p0").last_index() + 1
            for n in followers:
                _gated(c, n).hold(target)
            write = asyncio.ensure_future(c.by_id[leader].propose("p0", b"k=v"))
            await wait_until(lambda: all(_holds(c, n, "p0", target, term) for n in followers), 10,
                             "the followers to write the entry")
            await asyncio.sleep(5 * TICK_MS / 1000)  # room for an early ack to arrive
            assert not write.done()  # written on both, fsynced on neither: no quorum yet
            _gated(c, followers[0]).release()
            assert await write == target  # one follower's fsync and ack make the quorum
            _gated(c, followers[1]).release()
    run(scenario, 30)


def test_groups_elect_leaders_and_commit_on_every_replica() -> None:
    async def scenario() -> None:
        groups = [f"p{i}" for i in range(4)]
        async with cluster(groups, seed=1) as c:
            leaders = await wait_for_leaders(c.drivers, groups, 10)
            writes = [c.by_id[leaders[g]].propose(g, b"k%d=v%d" % (i, i))
                      for g in groups for i in range(20)]
            indexes = await asyncio.gather(*writes)
            assert all(isinstance(i, int) and i > 1 for i in indexes)
            assert len(set(zip([g for g in groups for _ in range(20)], indexes))) == 80
            expected = {b"k%d" % i: b"v%d" % i for i in range(20)}
            await wait_until(lambda: all(m.data[g] == expected for m in c.machines.values()
                                         for g in groups), 10, "every replica to apply")
            stats = c.drivers[0].stats()
            # group commit: on average more than one group's write per fsync-equivalent
            assert stats.group_writes > stats.group_commits
    run(scenario, 30)


def test_follower_refuses_with_the_leader_hint() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=2) as c:
            leader = (await wait_for_leaders(c.drivers, ["p0"], 10))["p0"]
            follower = next(d for d in c.drivers if d.node_id != leader)
            with pytest.raises(NotLeader) as info:
                await follower.propose("p0", b"k=v")
            assert info.value.leader_id == leader
    run(scenario, 20)


def test_reads_on_leader_and_follower_see_committed_writes() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=3) as c:
            leader = (await wait_for_leaders(c.drivers, ["p0"], 10))["p0"]
            await c.by_id[leader].propose("p0", b"x=1")
            for d in c.drivers:
                await d.read_index("p0")  # linearizable: x=1 must be applied here now
                assert c.machines[d.node_id].data["p0"][b"x"] == b"1"
    run(scenario, 20)


def test_isolated_leaders_entry_is_overwritten_and_its_proposer_told() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=4) as c:
            old = (await wait_for_leaders(c.drivers, ["p0"], 10))["p0"]
            await c.by_id[old].propose("p0", b"a=1")
            c.net.isolate(old)
            doomed = asyncio.ensure_future(c.by_id[old].propose("p0", b"a=lost"))
            others = [d for d in c.drivers if d.node_id != old]
            await wait_until(lambda: len({d.leader("p0") for d in others}) == 1
                             and others[0].leader("p0") not in (None, old), 10, "a new leader")
            new = c.by_id[others[0].leader("p0") or ""]
            await new.propose("p0", b"a=2")
            c.net.heal()
            with pytest.raises(NotLeader):
                await doomed
            await wait_until(lambda: all(m.data["p0"].get(b"a") == b"2"
                                         for m in c.machines.values()), 10, "convergence")
    run(scenario, 30)


def test_compaction_and_snapshot_catch_up_of_a_lagging_follower() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=5, compact_after_entries=20) as c:
            leader = (await wait_for_leaders(c.drivers, ["p0"], 10))["p0"]
            lagging = next(n for n in NODES if n != leader)
            c.net.isolate(lagging)
            for i in range(60):
                await c.by_id[leader].propose("p0", b"k%d=%d" % (i, i))
            assert c.engines[leader].store("p0").first_index() > 20  # the log was compacted
            c.net.heal()
            want = {b"k%d" % i: b"%d" % i for i in range(60)}
            await wait_until(lambda: c.machines[lagging].data["p0"] == want, 10, "catch-up")
            assert any(g == "p0" for g, _ in c.machines[lagging].restores)
    run(scenario, 30)


def test_idle_groups_cost_a_few_batches_per_heartbeat_interval() -> None:
    async def scenario() -> None:
        groups = [f"p{i}" for i in range(60)]
        async with cluster(groups, seed=6) as c:
            await wait_for_leaders(c.drivers, groups, 15)
            await asyncio.sleep(0.2)  # let elections' stragglers settle before counting
            before = dict(c.net.batches_sent)
            ticks_before = c.drivers[0].stats().ticks
            await wait_until(lambda: c.drivers[0].stats().ticks >= ticks_before + 40, 10,
                             "40 ticks")
            intervals = (c.drivers[0].stats().ticks - ticks_before) / RAFT.heartbeat_ticks
            for pair, count in c.net.batches_sent.items():
                per_interval = (count - before.get(pair, 0)) / intervals
                assert per_interval <= 3, (pair, per_interval)
            total = sum(c.net.batches_sent.values()) - sum(before.values())
            assert total > 0
    run(scenario, 40)


def test_leadership_transfer_moves_the_leader() -> None:
    async def scenario() -> None:
        async with cluster(["p0"], seed=7) as c:
            old = (await wait_for_leaders(c.drivers, ["p0"], 10))["p0"]
            target = next(n for n in NODES if n != old)
            with pytest.raises(NotLeader):
                await c.by_id[target].transfer_leadership("p0", old)
            await c.by_id[old].transfer_leadership("p0", target)
            await wait_until(lambda: all(d.leader("p0") == target for d in c.drivers), 10,
                             "the transfer")
            assert await c.by_id[target].propose("p0", b"after=transfer")
    run(scenario, 20)


class FakeTime:
    """A clock that moves only when the test says; `sleep` waits for it."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self._moved = asyncio.Event()

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, duration_s: float) -> None:
        until = self.now_s + duration_s
        while self.now_s < until:
            await self._moved.wait()

    def advance(self, by_s: float) -> None:
        self.now_s += by_s
        self._moved.set()
        self._moved = asyncio.Event()


def test_ticks_follow_the_injected_clock_and_none_are_skipped() -> None:
    async def scenario() -> None:
        time_ = FakeTime()
        net: LoopbackNetwork[Message] = LoopbackNetwork()
        driver = RaftDriver("n1", net.transport("n1"), MemoryLogEngine(), KvMachine(),
                            random.Random(8), DriverConfig(tick_interval_ms=100, raft=RAFT),
                            clock=time_.clock, sleep=time_.sleep)
        driver.add_group("solo", ["n1"])
        await driver.start()
        try:
            for _ in range(20):
                await asyncio.sleep(0)
            assert driver.stats().ticks == 0 and driver.leader("solo") is None
            time_.advance(2.5)  # 25 intervals at once: all 25 ticks happen, enough to elect
            await wait_until(lambda: driver.stats().ticks == 25, 5, "25 ticks")
            await wait_until(lambda: driver.is_leader("solo"), 5, "a one-replica election")
            assert await driver.propose("solo", b"k=v") == 3  # bootstrap, leader's no-op, ours
            assert driver.stats().ticks == 25
        finally:
            await driver.close()
    run(scenario, 20)
