"""Shared pieces for driver tests: a key-value state machine, three drivers on a loopback
network, a bounded runner, waiting helpers."""
from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from typing import AsyncIterator, Callable, Coroutine, Sequence, TypeVar

from replication.driver import DriverConfig, MemoryLogEngine, RaftDriver
from replication.raft.messages import Message
from replication.transport import LoopbackNetwork
from replication.types import Entry, Snapshot

T = TypeVar("T")


class KvMachine:
    """Entries are b"key=value"; apply returns the entry's index (what the proposer gets)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[bytes, bytes]] = defaultdict(dict)
        self.applied: dict[str, int] = defaultdict(int)
        self.restores: list[tuple[str, int]] = []

    def apply(self, group: str, entries: Sequence[Entry]) -> list[object]:
        results: list[object] = []
        for entry in entries:
            assert entry.index > self.applied[group], "applied out of order"
            key, _, value = entry.data.partition(b"=")
            self.data[group][key] = value
            self.applied[group] = entry.index
            results.append(entry.index)
        return results

    def restore(self, group: str, snapshot: Snapshot) -> None:
        pairs = [line.partition(b"=") for line in snapshot.data.split(b"\n") if line]
        self.data[group] = {k: v for k, _, v in pairs}
        self.applied[group] = snapshot.meta.index
        self.restores.append((group, snapshot.meta.index))

    def snapshot(self, group: str) -> bytes:
        return b"\n".join(k + b"=" + v for k, v in sorted(self.data[group].items()))


def run(make: Callable[[], Coroutine[object, object, T]], timeout_s: float) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout_s)
    return asyncio.run(bounded())


async def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def agreed_leader(drivers: Sequence[RaftDriver], group: str) -> str | None:
    """The leader every replica of `group` agrees on, if there is one."""
    leaders = {d.leader(group) for d in drivers}
    leader = leaders.pop() if len(leaders) == 1 else None
    return leader


async def wait_for_leaders(drivers: Sequence[RaftDriver], groups: Sequence[str],
                           timeout_s: float) -> dict[str, str]:
    await wait_until(lambda: all(agreed_leader(drivers, g) for g in groups), timeout_s,
                     "every group to have a leader all replicas know")
    return {g: agreed_leader(drivers, g) or "" for g in groups}


def by_id(drivers: Sequence[RaftDriver]) -> dict[str, RaftDriver]:
    return {d.node_id: d for d in drivers}


NODES = ("n1", "n2", "n3")


class LoopbackCluster:
    """Three RaftDrivers in one event loop over the loopback transport, every group on all
    three nodes, each driver with its own in-memory log engine and KvMachine."""

    def __init__(self, groups: Sequence[str], seed: int, config: DriverConfig,
                 engine: Callable[[], MemoryLogEngine] = MemoryLogEngine) -> None:
        self.net: LoopbackNetwork[Message] = LoopbackNetwork()
        self.machines = {n: KvMachine() for n in NODES}
        self.engines = {n: engine() for n in NODES}
        self.config = config
        rng = random.Random(seed)
        self.drivers = [RaftDriver(n, self.net.transport(n), self.engines[n], self.machines[n],
                                   random.Random(rng.getrandbits(64)), config) for n in NODES]
        for d in self.drivers:
            for g in groups:
                d.add_group(g, NODES)
        self.groups = list(groups)

    @property
    def by_id(self) -> dict[str, RaftDriver]:
        return by_id(self.drivers)


C = TypeVar("C", bound=LoopbackCluster)


@contextlib.asynccontextmanager
async def started(c: C) -> AsyncIterator[C]:
    """`c` with its drivers started, closed on the way out."""
    for d in c.drivers:
        await d.start()
    try:
        yield c
    finally:
        for d in c.drivers:
            await d.close()
