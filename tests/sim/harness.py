"""A lock-step cluster for unit tests of the core: messages are delivered at once, in order,
unless a link is cut; every replica's Ready is handled right after each input."""
from __future__ import annotations

import random

from replication.logstore import MemoryLogStore
from replication.raft import Message, RaftConfig, RaftCore, Role, bootstrap
from replication.types import Entry, EntryKind


class Cluster:
    def __init__(self, ids: list[str], config: RaftConfig | None = None, seed: int = 1) -> None:
        self.config = config or RaftConfig()
        self.rng = random.Random(seed)
        self.stores: dict[str, MemoryLogStore] = {}
        self.cores: dict[str, RaftCore] = {}
        self.applied: dict[str, list[Entry]] = {}
        self.reads: dict[str, list] = {}
        self.cut: set[tuple[str, str]] = set()
        self.sent: list[Message] = []
        self.queue: list[Message] = []
        for node in ids:
            store = MemoryLogStore()
            store.persist(*bootstrap(ids))
            self.stores[node] = store
            self.start(node)

    def start(self, node: str, store: MemoryLogStore | None = None) -> RaftCore:
        if store is not None:
            self.stores[node] = store
        core = RaftCore(node, self.stores[node], self.config, random.Random(self.rng.random()))
        self.cores[node] = core
        self.applied.setdefault(node, [])
        self.reads.setdefault(node, [])
        return core

    def isolate(self, node: str) -> None:
        for other in self.cores:
            if other != node:
                self.cut |= {(node, other), (other, node)}

    def heal(self) -> None:
        self.cut.clear()

    def drain(self, max_rounds: int = 10_000) -> None:
        for _ in range(max_rounds):
            for node, core in self.cores.items():
                while core.has_ready():
                    self.handle_ready(node)
            if not self.queue:
                return
            msg, self.queue = self.queue[0], self.queue[1:]
            if (msg.from_id, msg.to_id) in self.cut or msg.to_id not in self.cores:
                continue
            self.cores[msg.to_id].step(msg)
        raise AssertionError("no quiescence")

    def handle_ready(self, node: str) -> None:
        core = self.cores[node]
        rd = core.ready()
        self.stores[node].persist(rd.hard_state, rd.entries, rd.snapshot)
        self.sent.extend(rd.messages)
        self.queue.extend(rd.messages)
        self.applied[node].extend(e for e in rd.committed_entries if e.kind == EntryKind.NORMAL)
        self.reads[node].extend(rd.read_states)
        core.advance(rd)

    def tick(self, nodes: list[str] | None = None, times: int = 1) -> None:
        for _ in range(times):
            for node in nodes or list(self.cores):
                self.cores[node].tick()
            self.drain()

    def leaders(self) -> list[str]:
        return [n for n, c in self.cores.items() if c.role == Role.LEADER]

    def settle(self, max_ticks: int = 200) -> str:
        """Tick every replica until there is a leader; returns it."""
        for _ in range(max_ticks):
            self.tick()
            if self.leaders():
                self.tick()
                return self.leaders()[0]
        raise AssertionError("no leader")

    def make_leader(self, node: str) -> None:
        leader = self.settle()
        if leader != node:
            self.cores[leader].transfer_leadership(node)
            self.drain()
        assert self.leaders() == [node], self.leaders()
        self.tick(times=2)

    def crash(self, node: str) -> None:
        """Lose the core (memory); the store (disk) stays."""
        del self.cores[node]
