"""The deterministic simulator: N replicas of RaftCore in one thread, a seeded world around them.

Everything that happens is an event on one heap, ordered by (time, sequence number): a replica's
clock ticking, a message arriving, a Ready finishing its disk write, a client request or reply,
a fault. All choices come from one random.Random(seed), so a seed replays bit for bit; the trace
hash (of every event handled) shows that it did. Time is in nominal ticks (float).

The driver here is the one the real node runs, in miniature: take a Ready, persist it after a
disk delay (inputs keep arriving meanwhile), then send, apply, serve reads and advance. Like the
real driver it stops ticking a quiesced replica, wakes it (with the ticks it skipped) on any
message or request that would wake its core, pings its peers every few ticks, and wakes the
quiesced followers of a leader whose node sent no ping for an election timeout, or pings from a
new incarnation (replication.raft.liveness). The workload has idle periods, so groups quiesce.
"""
from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field

from replication.logstore import MemoryLogStore
from replication.raft import (
    ConfChangeType,
    Message,
    NotLeader,
    PeerLiveness,
    ProposalDropped,
    RaftConfig,
    RaftCore,
    Ready,
    Role,
    bootstrap,
)
from replication.sim.checkers import (
    ACKED_WRITE_LOST,
    LIVENESS,
    LogTerm,
    Op,
    SafetyChecker,
    Violation,
    check_linearizable,
)
from replication.sim.faults import MIXES, FaultMix
from replication.sim.kv import KvStateMachine, encode_write
from replication.types import Entry, EntryKind

# Event kinds.
TICK, DELIVER, PERSISTED, ARRIVE, REPLY, NEXT_OP, TIMEOUT, FAULT, HEAL, RESTART, ADMIN, FLAP, \
    PING, IDLE = range(14)
_CLIENT_DELAY = (0.05, 0.3)
SIM_QUIESCE_AFTER_TICKS = 4  # with the default election timeout of 10 ticks


def sim_raft_config(**overrides: object) -> RaftConfig:
    """The simulator's RaftConfig: the defaults, with quiescence on."""
    options: dict[str, object] = {"quiesce_after_ticks": SIM_QUIESCE_AFTER_TICKS, **overrides}
    return RaftConfig(**options)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int
    steps: int = 3000  # events in the faulty phase; then the world heals and the run settles
    mix: FaultMix = MIXES["calm"]
    raft: RaftConfig = field(default_factory=sim_raft_config)
    nodes: int = 3
    heal_ticks: float = 120.0  # budget for electing a leader and converging after healing
    check_every_steps: int = 1000  # log matching is checked this often (and at the end)
    max_replacements: int = 2
    # Deliberately unsafe drivers, for showing that the checkers catch them.
    unsafe_lazy_fsync: bool = False  # a persist becomes durable only at the next one
    unsafe_ack_on_append: bool = False  # acknowledge a write once proposed, not once applied


@dataclass(frozen=True, slots=True)
class SimResult:
    seed: int
    mix: str
    steps: int
    ticks: float
    violations: tuple[Violation, ...]
    trace_hash: str
    stats: tuple[tuple[str, int], ...]

    @property
    def ok(self) -> bool:
        return not self.violations


class SimNode:
    __slots__ = ("id", "store", "durable", "core", "sm", "alive", "incarnation", "period",
                 "in_flight", "writes", "reads", "removed", "ticks", "parked_at", "liveness")

    def __init__(self, node_id: str, store: MemoryLogStore, period: float) -> None:
        self.id = node_id
        self.store = store
        self.durable: MemoryLogStore | None = None  # unsafe_lazy_fsync: what survives a crash
        self.core: RaftCore | None = None
        self.sm = KvStateMachine()
        self.alive = False
        self.incarnation = 0
        self.period = period  # real time per tick of this replica's clock
        self.in_flight: Ready | None = None
        self.writes: dict[int, tuple[int, Op]] = {}  # log index -> (term, op)
        self.reads: dict[bytes, Op] = {}
        self.removed = False
        # The node's driver: its tick count, since when it has not ticked a quiesced core,
        # and what it knows of its peers (both start over with the process).
        self.ticks = 0
        self.parked_at: int | None = None
        self.liveness: PeerLiveness | None = None


class Client:
    __slots__ = ("id", "hint", "current")

    def __init__(self, client_id: int, hint: str) -> None:
        self.id = client_id
        self.hint = hint
        self.current: Op | None = None


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        self.cfg = config
        self.mix = config.mix
        self.rng = random.Random(config.seed)
        self.now = 0.0
        self.steps = 0
        self._heap: list[tuple] = []
        self._seq = 0
        self._hash = hashlib.blake2b(digest_size=16)
        self.checker = SafetyChecker()
        self.history: list[Op] = []
        self.nodes: dict[str, SimNode] = {}
        self.members: list[str] = []  # replicas that are (or are becoming) voters
        self.cut: set[tuple[str, str]] = set()
        self.faulty = True  # faults, drops and duplicates happen only in the faulty phase
        self.clients_on = True
        self.stats: dict[str, int] = {}
        self._partition = 0  # id of the partition in force, so stale HEAL events do nothing
        self._flapping: str | None = None
        self._admin: list[tuple[ConfChangeType, str]] = []
        self._admin_wait: tuple[int, int, float] | None = None  # (index, term, since)
        self._replacements = 0
        self._op_ids = 0
        drift = config.raft.max_clock_drift if self.mix.drift is None else self.mix.drift
        self._drift = drift
        ids = [f"n{i + 1}" for i in range(config.nodes)]
        for node_id in ids:
            store = MemoryLogStore()
            store.persist(*bootstrap(ids))
            self._add_node(node_id, store)
        self.clients = [Client(i, self.rng.choice(ids)) for i in range(self.mix.clients)]
        self._idle_until = 0.0  # clients start no new operation before this time
        for client in self.clients:
            self._at(self.rng.uniform(0, 2), NEXT_OP, client.id)
        if self.mix.fault_every_ticks > 0:
            self._at(self._fault_gap(), FAULT, None)
        if self.mix.idle_every_ticks > 0:
            self._at(self.rng.expovariate(1.0 / self.mix.idle_every_ticks), IDLE, None)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> SimResult:
        while self._heap and self.steps < self.cfg.steps:
            self._step()
            if self.steps % self.cfg.check_every_steps == 0:
                self.checker.check_log_matching(self._stores())
        self._heal_all()
        deadline = self.now + self.cfg.heal_ticks
        converged = False
        while self._heap and self.now < deadline:
            self._step()
            if self.steps % 64 == 0 and self._converged():
                converged = True
                break
        self._final_checks(converged)
        return self.result()

    def result(self) -> SimResult:
        return SimResult(self.cfg.seed, self.mix.name, self.steps, round(self.now, 3),
                         tuple(sorted(self.checker.violations.values(),
                                      key=lambda v: v.property)),
                         self._hash.hexdigest(), tuple(sorted(self.stats.items())))

    def _step(self) -> None:
        time, _, kind, a, b, c = heapq.heappop(self._heap)
        self.now = time
        self.steps += 1
        self._trace(kind, a, b)
        _HANDLERS[kind](self, a, b, c)

    def _at(self, delay: float, kind: int, a: object, b: object = None, c: object = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self.now + delay, self._seq, kind, a, b, c))

    def _trace(self, kind: int, a: object, b: object) -> None:
        if kind == DELIVER:
            m: Message = a  # type: ignore[assignment]
            text = (f"{self.now:.6f} D {m.from_id}>{m.to_id} {m.type} {m.term} {m.index} "
                    f"{m.log_term} {m.commit} {len(m.entries)} {m.reject}")
        else:
            label = a.op_id if isinstance(a, Op) else a
            text = f"{self.now:.6f} {kind} {label}"
        self._hash.update(text.encode())

    def _count(self, stat: str, n: int = 1) -> None:
        self.stats[stat] = self.stats.get(stat, 0) + n

    # -- replicas ------------------------------------------------------------------------------

    def _add_node(self, node_id: str, store: MemoryLogStore) -> SimNode:
        rate = 1.0 + self.rng.uniform(-self._drift, self._drift)
        node = SimNode(node_id, store, 1.0 / rate)
        self.nodes[node_id] = node
        self.members.append(node_id)
        self._start(node)
        return node

    def _start(self, node: SimNode) -> None:
        node.core = RaftCore(node.id, node.store, self.cfg.raft,
                             random.Random(self.rng.getrandbits(64)))
        snap = node.store.snapshot()
        node.sm = KvStateMachine()
        node.sm.restore(snap.data)
        node.sm.index = snap.meta.index
        self.checker.observe_restore(node.id, snap.meta.index)
        node.alive = True
        node.ticks = 0
        node.parked_at = None
        node.liveness = PeerLiveness.for_raft(self.cfg.raft)
        if self.cfg.unsafe_lazy_fsync:
            node.durable = _clone(node.store)
        self._at(self.rng.uniform(0, node.period), TICK, node.id, node.incarnation)
        self._pump(node)

    def _crash(self, node: SimNode) -> None:
        node.alive = False
        node.incarnation += 1
        node.core = None
        node.in_flight = None
        node.writes.clear()
        node.reads.clear()
        if node.durable is not None:
            node.store = node.durable  # the last persist never reached the disk
        self._count("crashes")

    def _on_tick(self, node_id: str, incarnation: int, _: object) -> None:
        node = self.nodes[node_id]
        if not node.alive or node.incarnation != incarnation:
            return
        node.ticks += 1
        if node.parked_at is None:
            node.core.tick()
        self._liveness_tick(node)
        self._observe(node)
        self._pump(node)
        self._at(node.period, TICK, node_id, incarnation)

    def _on_deliver(self, m: Message, _: object, __: object) -> None:
        node = self.nodes.get(m.to_id)
        if node is None or not node.alive or (m.from_id, m.to_id) in self.cut:
            return
        if node.core.wakes_for(m):
            self._wake(node)
        node.core.step(m)
        self._observe(node)
        self._pump(node)

    # -- quiescence (what replication/driver.py does, per node) -------------------------------

    def _park(self, node: SimNode) -> None:
        """Stop ticking a core that quiesced (called after every input)."""
        core = node.core
        if node.parked_at is None and core.quiesced:
            node.parked_at = node.ticks
            if core.role == Role.LEADER:
                self._count("quiesced_leader")
            else:
                self._count("quiesced_follower")
                if core.leader_id is not None:
                    node.liveness.alive(core.leader_id, node.ticks)  # its QUIESCE just came

    def _wake(self, node: SimNode, why: str = "wakes") -> None:
        """Tick a parked core again, crediting a follower the ticks its leader's node has been
        silent (no ping from it)."""
        if node.parked_at is None:
            return
        skipped = node.ticks - node.parked_at
        node.parked_at = None
        core = node.core
        leader = core.leader_id
        silent = node.liveness.silent_ticks(leader, node.ticks) if leader else 0
        core.wake(skipped, silent)
        self._count(why)

    def _liveness_tick(self, node: SimNode) -> None:
        """Ping every peer on ping ticks; wake a quiesced follower whose leader's node sent no
        ping for the timeout."""
        live, now, core = node.liveness, node.ticks, node.core
        if self.cfg.raft.quiesce_after_ticks and live.ping_due(now):
            for peer in core.voters:
                if peer != node.id:
                    self._ping(node, peer)
        leader = core.leader_id
        if (node.parked_at is not None and core.role != Role.LEADER and leader is not None
                and live.dead(leader, now)):
            self._wake(node, "dead_leader_wakes")

    def _ping(self, node: SimNode, to_id: str) -> None:
        self._count("pings")
        if (node.id, to_id) in self.cut or (
                self.faulty and self.mix.drop and self.rng.random() < self.mix.drop):
            return
        self._at(self._delay(), PING, node.id, to_id, node.incarnation)

    def _on_ping(self, from_id: str, to_id: str, incarnation: int) -> None:
        node = self.nodes.get(to_id)
        if node is None or not node.alive or (from_id, to_id) in self.cut:
            return
        tag = incarnation.to_bytes(8, "big")
        core = node.core
        if (node.liveness.restarted(from_id, tag) and node.parked_at is not None
                and core.role != Role.LEADER and core.leader_id == from_id):
            self._wake(node, "restarted_leader_wakes")  # credits the silence before this ping
        node.liveness.heard(from_id, node.ticks, tag)

    def _observe(self, node: SimNode) -> None:
        core = node.core
        if core.role == Role.LEADER:
            log_term = LogTerm(core.log_term, node.store.first_index())
            if self.checker.observe_leader(node.id, core.term, log_term):
                self._count("elections")

    def _pump(self, node: SimNode) -> None:
        """Take a Ready if none is being persisted; its disk write completes later."""
        self._park(node)
        if node.in_flight is None and node.core.has_ready():
            node.in_flight = node.core.ready()
            lo, hi = self.mix.disk_ticks
            self._at(self.rng.uniform(lo, hi), PERSISTED, node.id, node.incarnation)

    def _on_persisted(self, node_id: str, incarnation: int, _: object) -> None:
        node = self.nodes[node_id]
        if not node.alive or node.incarnation != incarnation:
            return
        rd, node.in_flight = node.in_flight, None
        if self.cfg.unsafe_lazy_fsync:
            node.durable = _clone(node.store)
        node.store.persist(rd.hard_state, rd.entries, rd.snapshot)
        if rd.snapshot is not None:
            node.sm.restore(rd.snapshot.data)
            node.sm.index = rd.snapshot.meta.index
            self.checker.observe_restore(node.id, rd.snapshot.meta.index)
            self._count("snapshots_installed")
        for m in rd.messages:
            self._send(m)
        for entry in rd.committed_entries:
            self._apply(node, entry)
        for rs in rd.read_states:
            op = node.reads.pop(rs.context, None)
            if op is not None:
                op.via_lease = rs.via_lease
                if rs.via_lease and self._newer_leader(node):
                    self._count("lease_reads_by_deposed_leader")
                self._reply(op, node.id, True, node.sm.values.get(op.key))
                self._count("lease_reads" if rs.via_lease else "quorum_reads")
        node.core.advance(rd)
        self._maybe_compact(node)
        self._observe(node)
        self._pump(node)

    def _apply(self, node: SimNode, entry: Entry) -> None:
        node.sm.apply(entry)
        self.checker.observe_apply(node.id, entry)
        pending = node.writes.pop(entry.index, None)
        if pending is not None and pending[0] == entry.term and not self.cfg.unsafe_ack_on_append:
            self._reply(pending[1], node.id, True, None)

    def _newer_leader(self, node: SimNode) -> bool:
        term = node.core.term
        return any(n.alive and n.core.role == Role.LEADER and n.core.term > term
                   for n in self.nodes.values())

    def _maybe_compact(self, node: SimNode) -> None:
        if node.sm.index - node.store.snapshot().meta.index >= self.mix.snapshot_every:
            try:
                snap = node.core.build_snapshot(node.sm.index, node.sm.snapshot())
            except ValueError:
                return  # that index is not in the core's log view right now; try later
            node.store.compact(snap)
            self._count("compactions")

    def _stores(self) -> dict[str, MemoryLogStore]:
        return {n.id: n.store for n in self.nodes.values()}

    # -- network -------------------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        mix = self.mix
        if (m.from_id, m.to_id) in self.cut:
            return
        if self.faulty and mix.drop and self.rng.random() < mix.drop:
            self._count("dropped")
            return
        self._at(self._delay(), DELIVER, m)
        if self.faulty and mix.duplicate and self.rng.random() < mix.duplicate:
            self._at(self._delay(), DELIVER, m)

    def _delay(self) -> float:
        mix = self.mix
        if self.faulty and mix.long_delay and self.rng.random() < mix.long_delay:
            return self.rng.uniform(0, mix.long_delay_ticks)
        return self.rng.uniform(*mix.delay_ticks)

    # -- clients -------------------------------------------------------------------------------

    def _on_next_op(self, client_id: int, _: object, __: object) -> None:
        if not self.clients_on:
            return
        mix, rng = self.mix, self.rng
        if self.now < self._idle_until:  # an idle period: come back after it
            self._at(self._idle_until - self.now + rng.uniform(0, 1), NEXT_OP, client_id)
            return
        client = self.clients[client_id]
        self._op_ids += 1
        is_write = rng.random() < mix.write_ratio
        key = f"k{rng.randrange(mix.keys)}"
        op = Op(self._op_ids, client_id, is_write, key, self._op_ids if is_write else None,
                invoke=self.now)
        live = [n for n in self.members if not self.nodes[n].removed]
        target = client.hint
        if target not in live or rng.random() < mix.random_target:
            target = rng.choice(live)
        op.node = target
        self.history.append(op)
        client.current = op
        lease_ok = rng.random() < mix.lease_ratio
        fast = lease_ok and mix.fast_lease_ratio > 0 and rng.random() < mix.fast_lease_ratio
        self._at(rng.uniform(*_CLIENT_DELAY), ARRIVE, target, op, (lease_ok, fast))
        self._at(mix.op_timeout_ticks, TIMEOUT, op)

    def _on_arrive(self, node_id: str, op: Op, how: tuple[bool, bool]) -> None:
        node = self.nodes[node_id]
        if not node.alive:
            return  # the request is lost; the client times out
        lease_ok, fast = how
        if not op.is_write and fast and self._serve_under_lease(node, op):
            return
        self._wake(node, "request_wakes")
        core = node.core
        try:
            if op.is_write:
                entry = core.propose(encode_write(op.op_id, op.key, op.value))
                node.writes[entry.index] = (entry.term, op)
                if self.cfg.unsafe_ack_on_append:
                    self._reply(op, node_id, True, None)
            else:
                node.reads[op.op_id.to_bytes(8, "big")] = op
                core.read_index(op.op_id.to_bytes(8, "big"), lease_ok)
        except NotLeader as e:
            node.reads.pop(op.op_id.to_bytes(8, "big"), None)
            self._reply(op, node_id, False, e.leader_id)
        except ProposalDropped:
            self._reply(op, node_id, False, None)
        self._pump(node)

    def _serve_under_lease(self, node: SimNode, op: Op) -> bool:
        """The node's fast path (RaftDriver.lease_read_ok, node/service.py): answer from the
        state machine at once, with no core input, so nothing wakes; False if it may not."""
        core = node.core
        if not (core.lease_valid and core.applied_index >= core.commit_index
                and core.log_term(core.commit_index) == core.term):
            return False
        core.note_activity()
        op.via_lease = True
        if self._newer_leader(node):
            self._count("lease_reads_by_deposed_leader")
        self._reply(op, node.id, True, node.sm.values.get(op.key))
        self._count("lease_reads_fast")
        return True

    def _reply(self, op: Op, node_id: str, ok: bool, value: object) -> None:
        self._at(self.rng.uniform(*_CLIENT_DELAY), REPLY, op, (node_id, ok, value))

    def _on_reply(self, op: Op, answer: tuple[str, bool, object], _: object) -> None:
        client = self.clients[op.client]
        if client.current is not op:
            return  # answered after the client gave up: it stays unknown
        node_id, ok, value = answer
        op.complete = self.now
        op.ok = ok
        if ok:
            client.hint = node_id
            if not op.is_write:
                op.value = value  # type: ignore[assignment]
            self._count("writes_acked" if op.is_write else "reads_ok")
        elif isinstance(value, str):
            client.hint = value
        else:
            client.hint = self.rng.choice(self.members)
        self._next_op(client)

    def _on_idle(self, _: object, __: object, ___: object) -> None:
        """Clients start nothing new for a while: the group goes idle and may quiesce."""
        mix = self.mix
        self._idle_until = self.now + self.rng.uniform(*mix.idle_ticks)
        self._count("idle_periods")
        gap = self.rng.expovariate(1.0 / mix.idle_every_ticks)
        self._at(self._idle_until - self.now + gap, IDLE, None)

    def _on_timeout(self, op: Op, _: object, __: object) -> None:
        client = self.clients[op.client]
        if client.current is not op:
            return
        if not op.is_write:
            op.ok = False  # a read that never answered has no effect
        self._count("timeouts")
        client.hint = self.rng.choice(self.members)
        self._next_op(client)

    def _next_op(self, client: Client) -> None:
        client.current = None
        self._at(self.rng.uniform(*self.mix.think_ticks), NEXT_OP, client.id)

    # -- faults --------------------------------------------------------------------------------

    def _fault_gap(self) -> float:
        return self.rng.expovariate(1.0 / self.mix.fault_every_ticks)

    def _on_fault(self, _: object, __: object, ___: object) -> None:
        if not self.faulty:
            return
        mix = self.mix
        kinds = [("isolate", mix.isolate), ("split", mix.split), ("bridge", mix.bridge),
                 ("flap", mix.flap), ("one_way", mix.one_way), ("crash", mix.crash),
                 ("transfer", mix.transfer), ("replace", mix.replace), ("skew", mix.skew)]
        kinds = [(k, w) for k, w in kinds if w > 0]
        kind = self.rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        getattr(self, f"_fault_{kind}")()
        self._count(f"fault_{kind}")
        self._at(self._fault_gap(), FAULT, None)

    def _pick(self, prefer_leader: bool = True) -> str:
        live = [n for n in self.members if self.nodes[n].alive and not self.nodes[n].removed]
        leader = self._leader()
        if prefer_leader and leader is not None and self.rng.random() < self.mix.leader_bias:
            return leader.id
        return self.rng.choice(live or self.members)

    def _leader(self) -> SimNode | None:
        best = None
        for node_id in self.members:
            node = self.nodes[node_id]
            if node.alive and node.core.role == Role.LEADER:
                if best is None or node.core.term > best.core.term:
                    best = node
        return best

    def _new_partition(self, cut: set[tuple[str, str]]) -> None:
        self._partition += 1
        self._flapping = None
        self.cut = cut
        lo, hi = self.mix.fault_ticks
        self._at(self.rng.uniform(lo, hi), HEAL, self._partition)

    def _isolation(self, node_id: str) -> set[tuple[str, str]]:
        others = [n for n in self.nodes if n != node_id]
        return {(node_id, o) for o in others} | {(o, node_id) for o in others}

    def _fault_isolate(self) -> None:
        self._new_partition(self._isolation(self._pick()))

    def _fault_split(self) -> None:
        ids = [n for n in self.members if not self.nodes[n].removed]
        self.rng.shuffle(ids)
        minority = set(ids[:max(1, (len(ids) - 1) // 2)])
        self._new_partition({(a, b) for a in self.nodes for b in self.nodes
                             if (a in minority) != (b in minority)})

    def _fault_bridge(self) -> None:
        ids = [n for n in self.members if not self.nodes[n].removed]
        if len(ids) < 3:
            return self._fault_isolate()
        self.rng.shuffle(ids)
        bridge, rest = ids[0], ids[1:]
        left = set(rest[:len(rest) // 2])
        right = set(rest) - left
        self._new_partition({(a, b) for a in left for b in right} |
                            {(b, a) for a in left for b in right})

    def _fault_one_way(self) -> None:
        src = self._pick()
        dst = self.rng.choice([n for n in self.members if n != src] or [src])
        self._new_partition({(src, dst)})

    def _fault_flap(self) -> None:
        self._new_partition(set())
        self._flapping = self._pick()
        self._at(0.0, FLAP, self._partition)

    def _on_flap(self, partition: int, _: object, __: object) -> None:
        if partition != self._partition or self._flapping is None:
            return
        self.cut = set() if self.cut else self._isolation(self._flapping)
        self._at(self.rng.uniform(1.0, 4.0), FLAP, partition)

    def _on_heal(self, partition: int, _: object, __: object) -> None:
        if partition == self._partition:
            self.cut = set()
            self._flapping = None

    def _fault_crash(self) -> None:
        node = self.nodes[self._pick()]
        if not node.alive:
            return
        self._crash(node)
        lo, hi = self.mix.down_ticks
        self._at(self.rng.uniform(lo, hi), RESTART, node.id, node.incarnation)

    def _on_restart(self, node_id: str, incarnation: int, _: object) -> None:
        node = self.nodes[node_id]
        if not node.alive and not node.removed and node.incarnation == incarnation:
            self._start(node)

    def _fault_skew(self) -> None:
        slow = self._pick()
        for node in self.nodes.values():
            rate = 1.0 - self._drift if node.id == slow else 1.0 + self.rng.uniform(0, self._drift)
            node.period = 1.0 / rate  # from the replica's next tick on

    def _fault_transfer(self) -> None:
        leader = self._leader()
        if leader is None:
            return
        others = [v for v in leader.core.voters if v != leader.id]
        if others:
            self._wake(leader)
            leader.core.transfer_leadership(self.rng.choice(others))
            self._pump(leader)

    def _fault_replace(self) -> None:
        if self._admin or self._replacements >= self.cfg.max_replacements:
            return
        leader = self._leader()
        old = [n for n in self.members if not self.nodes[n].removed
               and (leader is None or n != leader.id)]
        if not old:
            return
        self._replacements += 1
        new_id = f"n{len(self.nodes) + 1}"
        self._admin = [(ConfChangeType.ADD_VOTER, new_id),
                       (ConfChangeType.REMOVE_VOTER, self.rng.choice(old))]
        self._at(0.0, ADMIN, None)

    def _on_admin(self, _: object, __: object, ___: object) -> None:
        """Drive the pending membership change: propose it, then wait for it to commit."""
        if not self._admin:
            return
        op, target = self._admin[0]
        if self._admin_wait is not None:
            self._check_admin_commit(op, target)
        else:
            self._propose_admin(op, target)
        if self._admin:
            self._at(1.0, ADMIN, None)

    def _check_admin_commit(self, op: ConfChangeType, target: str) -> None:
        index, term, since = self._admin_wait  # type: ignore[misc]
        entry = self.checker.committed.get(index)
        if entry is not None and entry.term == term:
            self._admin_wait = None
            self._admin.pop(0)
            self._count("conf_changes")
            if op == ConfChangeType.REMOVE_VOTER:
                node = self.nodes[target]
                if node.alive:
                    self._crash(node)
                node.removed = True  # decommissioned; its disk stays for the log checks
        elif entry is not None or self.now - since > 40.0:
            self._admin_wait = None  # lost to a new leader; propose again

    def _propose_admin(self, op: ConfChangeType, target: str) -> None:
        leader = self._leader()
        if leader is None:
            return
        core = leader.core
        self._wake(leader)
        if op == ConfChangeType.REMOVE_VOTER and target == leader.id:
            others = [v for v in core.voters if v != leader.id and v != target]
            if others:
                core.transfer_leadership(self.rng.choice(others))
                self._pump(leader)
            return
        if op == ConfChangeType.ADD_VOTER and target not in self.nodes:
            self._add_node(target, MemoryLogStore())
        in_force = (target in core.voters) == (op == ConfChangeType.ADD_VOTER)
        try:
            if in_force:
                # Proposed before, by this or an earlier leader: wait until our log commits.
                self._admin_wait = (core.last_index, core.log_term(core.last_index) or 0,
                                    self.now)
            else:
                entry = core.propose_conf_change(op, target)
                self._admin_wait = (entry.index, entry.term, self.now)
        except (NotLeader, ProposalDropped):
            return
        self._pump(leader)

    # -- the end -------------------------------------------------------------------------------

    def _heal_all(self) -> None:
        self.faulty = False
        self.clients_on = False
        self.cut = set()
        self._flapping = None
        self._partition += 1
        for node in self.nodes.values():
            if not node.alive and not node.removed:
                self._start(node)

    def _converged(self) -> bool:
        leader = self._leader()
        if leader is None or self._admin:
            return False
        core = leader.core
        if core.log_term(core.commit_index) != core.term:
            return False  # no entry of its term committed yet
        for voter in core.voters:
            node = self.nodes.get(voter)
            if node is None or not node.alive or node.core.applied_index != core.commit_index:
                return False
        return True

    def _final_checks(self, converged: bool) -> None:
        checker = self.checker
        checker.check_log_matching(self._stores())
        leader = self._leader()
        if not converged or leader is None:
            checker.report(LIVENESS, f"no leader with all voters caught up {self.cfg.heal_ticks}"
                           f" ticks after healing")
        else:
            self._check_acked_writes(leader)
        violation, inconclusive = check_linearizable(self.history)
        if violation is not None:
            checker.report(violation.property, violation.detail)
        if inconclusive:
            self._count("linearizability_inconclusive")

    def _check_acked_writes(self, leader: SimNode) -> None:
        acked = [op for op in self.history if op.is_write and op.ok]
        for voter in leader.core.voters:
            node = self.nodes[voter]
            for op in acked:
                if op.op_id not in node.sm.applied_ops:
                    self.checker.report(ACKED_WRITE_LOST, f"{op} is not in {voter}'s state "
                                        f"(applied {node.sm.index})")
                    return


def _clone(store: MemoryLogStore) -> MemoryLogStore:
    """A copy of what a MemoryLogStore holds (the simulator's model of the disk's contents)."""
    copy = MemoryLogStore()
    copy._hard, copy._snap, copy._log = store._hard, store._snap, list(store._log)
    return copy


_HANDLERS = {
    TICK: Simulation._on_tick,
    DELIVER: Simulation._on_deliver,
    PERSISTED: Simulation._on_persisted,
    ARRIVE: Simulation._on_arrive,
    REPLY: Simulation._on_reply,
    NEXT_OP: Simulation._on_next_op,
    TIMEOUT: Simulation._on_timeout,
    FAULT: Simulation._on_fault,
    HEAL: Simulation._on_heal,
    RESTART: Simulation._on_restart,
    ADMIN: Simulation._on_admin,
    FLAP: Simulation._on_flap,
    PING: Simulation._on_ping,
    IDLE: Simulation._on_idle,
}


def run_seed(seed: int, mix: FaultMix, steps: int = 3000, raft: RaftConfig | None = None,
             **options: object) -> SimResult:
    config = SimConfig(seed=seed, steps=steps, mix=mix, raft=raft or sim_raft_config(),
                       **options)  # type: ignore[arg-type]
    return Simulation(config).run()
