"""Failover time: from a leader's crash to a new leader committing writes, in nominal ticks."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from replication.raft import RaftConfig, Role
from replication.sim.faults import FaultMix
from replication.sim.simulator import SimConfig, SimNode, Simulation, sim_raft_config
from replication.types import Entry, EntryKind

# A calm network and clients that give up quickly, so they find the new leader soon.
FAILOVER_MIX = FaultMix("failover", clients=4, think_ticks=(0.0, 0.5), op_timeout_ticks=4.0,
                        random_target=0.3, idle_every_ticks=0.0)


@dataclass(frozen=True, slots=True)
class FailoverSample:
    seed: int
    elected_ticks: float  # crash -> a new leader exists
    ready_ticks: float  # crash -> the new leader committed its first entry (it takes writes)
    write_ticks: float  # crash -> the first client write of the new term is committed


class _FailoverSim(Simulation):
    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        self.crash_time: float | None = None
        self.old_term = 0
        self.elected: float | None = None
        self.ready: float | None = None
        self.write: float | None = None

    def _observe(self, node: SimNode) -> None:
        super()._observe(node)
        core = node.core
        if (self.crash_time is not None and self.elected is None
                and core.role == Role.LEADER and core.term > self.old_term):
            self.elected = self.now

    def _apply(self, node: SimNode, entry: Entry) -> None:
        super()._apply(node, entry)
        if self.crash_time is None or entry.term <= self.old_term:
            return
        if self.ready is None:
            self.ready = self.now
        if self.write is None and entry.kind == EntryKind.NORMAL:
            self.write = self.now


def measure_failover(seed: int, raft: RaftConfig | None = None, warmup_ticks: float = 40.0,
                     limit_ticks: float = 300.0, quiesced: bool = False) -> FailoverSample | None:
    """Crash the leader once the group is warm; None if no new leader took writes in time.
    `quiesced`: first let the clients stop until every replica is quiesced (quiescence on,
    sim_raft_config's default), crash the leader then, and let the clients start again: the
    followers learn of the crash only from node-level liveness."""
    default = sim_raft_config() if quiesced else RaftConfig()
    config = SimConfig(seed=seed, steps=10**9, mix=FAILOVER_MIX, raft=raft or default)
    sim = _FailoverSim(config)
    while sim.now < warmup_ticks or sim._leader() is None:
        sim._step()
        if sim.now > limit_ticks:
            return None
    if quiesced and not _quiesce(sim, sim.now + limit_ticks):
        return None
    # Crash at a random moment of the heartbeat (or ping) cycle, not right after an event.
    end = sim.now + sim.rng.uniform(0.0, config.raft.heartbeat_ticks)
    while sim.now < end:
        sim._step()
    leader = sim._leader()
    if leader is None:
        return None
    sim.old_term = leader.core.term
    sim.crash_time = sim.now
    sim._crash(leader)
    if quiesced:
        _restart_clients(sim)
    deadline = sim.now + limit_ticks
    while sim.write is None and sim.now < deadline:
        sim._step()
    if sim.write is None or sim.elected is None or sim.ready is None:
        return None
    t0 = sim.crash_time
    return FailoverSample(seed, sim.elected - t0, sim.ready - t0, sim.write - t0)


def _quiesce(sim: Simulation, deadline: float) -> bool:
    """Stop the clients and run until none has an operation out and every replica is
    quiesced (its driver stopped ticking it); False if that did not happen by `deadline`."""
    sim.clients_on = False
    while sim.now < deadline:
        sim._step()
        idle = all(c.current is None for c in sim.clients)
        if idle and all(n.parked_at is not None for n in sim.nodes.values() if n.alive):
            return True
    return False


def _restart_clients(sim: Simulation) -> None:
    sim.clients_on = True
    for client in sim.clients:
        sim._next_op(client)


def summarize(samples: list[FailoverSample]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("elected_ticks", "ready_ticks", "write_ticks"):
        values = [getattr(s, name) for s in samples]
        out[f"{name}_median"] = round(statistics.median(values), 2)
        out[f"{name}_max"] = round(max(values), 2)
    return out
