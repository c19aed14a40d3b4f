"""The asyncio driver: many Raft groups (one per partition replica on this node) over one
Transport and one log engine.

One loop turn:
  1. tick every group for each tick interval that passed (the injected clock says how many),
     step every message that arrived and start every queued proposal/read/transfer;
  2. take the Ready of every group that has one and write them ALL with one group commit
     (one WriteBatch, written here);
  3. when that needs an fsync (new entries, a term or a vote), run it in a worker thread, and
     meanwhile send what promises nothing about this node's log (a leader's appends and
     heartbeats) and apply committed entries through the StateMachine, resolving proposals
     and reads; after the fsync send the rest (acks, votes). Otherwise (or when a snapshot
     must be restored first) restore, send, apply, in that order;
  4. advance every core.

Only the loop task touches cores and stores; everything else (receiver callback, propose(),
read_index(), ...) only queues work and wakes the loop, and the worker thread only fsyncs.
(lease_read_ok, called from request handlers, reads a core's volatile state and resets its
quiet-tick counter; it never reads a store.)

Heartbeat coalescing: heartbeats of all groups leave in the tick's turn, so between two nodes they
form one batch per tick. HEARTBEAT_RESP messages are held until the next tick's batch (or ride
along earlier with other traffic to that node): otherwise every heartbeat batch received would
cost a response batch of its own. Holding delays acks by at most one tick; leases are counted from
when a round was sent, so that only shortens how long a lease lasts after its ack, never makes it
unsafe.

Quiescence (RaftConfig.quiesce_after_ticks; the rules are in replication/raft/core.py): a group
whose core quiesced is *parked*: the loop stops ticking it, so 25 idle groups cost nothing per
tick. It is woken, with the ticks it skipped, before anything that would wake its core reaches
it: a message, a proposal, a read or a transfer. Since a quiesced follower hears nothing from its
group, the node keeps node-level liveness (replication/raft/liveness.py): a node that leads
parked groups pings their followers' nodes every few ticks (one tiny message of group
LIVENESS_GROUP, carrying the node's incarnation; it rides in a batch that goes there anyway when
there is one); when a node that leads parked followers here sent no ping for an election timeout,
or pings from a new incarnation (it restarted), those followers are woken and credited the
silent ticks, so they elect a new leader about as fast as if they had been heartbeated.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

from dynalab.listeners import Listeners
from replication.logstore import LogStore, MemoryLogStore
from replication.raft import (
    Message,
    MessageType,
    NotLeader,
    PeerLiveness,
    ProposalDropped,
    RaftConfig,
    RaftCore,
    Ready,
    Role,
    bootstrap,
)
from replication.transport import GroupMessage, Transport
from replication.types import Entry, EntryKind, HardState, Snapshot

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]  # monotonic seconds
LIVENESS_GROUP = ""  # the group of a liveness ping (no partition or metadata group is named "")
# What a replica may send before the fsync of the Ready it came in: a leader's messages promise
# nothing about its own log (RaftDriver._pipelined).
_EARLY = frozenset({MessageType.APPEND, MessageType.HEARTBEAT, MessageType.SNAPSHOT,
                    MessageType.TIMEOUT_NOW, MessageType.READ_INDEX_RESP})


# ---------------------------------------------------------------------------- seams

@dataclass(frozen=True, slots=True)
class GroupWrite:
    """What one group's Ready says must be persisted (same meaning as LogStore.persist)."""

    group: str
    hard_state: HardState | None
    entries: Sequence[Entry] = ()
    snapshot: Snapshot | None = None


class LogEngine(Protocol):
    """The log stores of all groups on a node, with a group commit (node/logstore.py has the
    RocksDB one)."""

    def store(self, group: str) -> LogStore: ...

    def write_many(self, writes: Sequence[GroupWrite]) -> bool:
        """Write all of them in one go (a process crash keeps them); True if `sync()` must
        follow before they count as durable (ideally one fsync for all)."""
        ...

    def sync(self) -> None:
        """Make every write so far durable. It may run in a worker thread."""
        ...


class MemoryLogEngine:
    """LogEngine over MemoryLogStores, for tests."""

    def __init__(self) -> None:
        self._stores: dict[str, MemoryLogStore] = {}

    def store(self, group: str) -> MemoryLogStore:
        return self._stores.setdefault(group, MemoryLogStore())

    def write_many(self, writes: Sequence[GroupWrite]) -> bool:
        """True when a real engine would fsync (etcd's MustSync), so that drivers over this
        engine take the same paths as over RocksDB."""
        must_sync = False
        for w in writes:
            store = self.store(w.group)
            old, new = store.hard_state(), w.hard_state
            must_sync = must_sync or bool(w.entries) or w.snapshot is not None or (
                new is not None and (new.term, new.vote) != (old.term, old.vote))
            store.persist(w.hard_state, w.entries, w.snapshot)
        return must_sync

    def sync(self) -> None:
        pass


class StateMachine(Protocol):
    def apply(self, group: str, entries: Sequence[Entry]) -> Sequence[object]:
        """Apply committed NORMAL entries in log order; return one result per entry (it is what
        the proposer's `propose` returns)."""
        ...

    def restore(self, group: str, snapshot: Snapshot) -> None:
        """Replace the group's state with `snapshot.data` (state as of snapshot.meta.index).
        Also called by add_group when the store holds a snapshot: the entries after it are
        then applied again (a persistent state machine may skip what it already has)."""
        ...

    def snapshot(self, group: str) -> bytes:
        """The group's state as of the last entry applied, for log compaction."""
        ...


class OutcomeUnknown(Exception):
    """A proposal may or may not have been applied (a snapshot skipped over it, or the driver
    stopped); the caller must find out (e.g. by reading) before retrying a non-idempotent write."""


# ---------------------------------------------------------------------------- values

@dataclass(frozen=True, slots=True)
class DriverConfig:
    tick_interval_ms: int = 100
    raft: RaftConfig = field(default_factory=RaftConfig)
    hold_heartbeat_responses: bool = True
    compact_after_entries: int = 10_000  # applied entries kept in the log before a snapshot
    persist_in_thread: bool = True  # the fsync of a group commit runs in a worker thread
    # Node-level liveness for quiesced groups, in ticks; 0: PeerLiveness.for_raft(raft) (a peer
    # is dead after an election timeout of silence, pinged every half of it).
    liveness_ping_ticks: int = 0
    liveness_timeout_ticks: int = 0


@dataclass(frozen=True, slots=True)
class DriverStats:
    ticks: int = 0
    loop_turns: int = 0
    group_commits: int = 0  # write_many calls (one WriteBatch each, one fsync at most)
    group_writes: int = 0  # GroupWrites in them
    entries_applied: int = 0
    messages_sent: int = 0
    messages_unknown_group: int = 0
    batches_sent: Mapping[str, int] = field(default_factory=dict)  # per destination node
    group_ticks: int = 0  # core ticks, summed over groups (parked groups are not ticked)
    groups_parked: int = 0  # times a quiesced group stopped being ticked
    groups_woken: int = 0  # times a parked group was woken (for any reason)
    dead_leader_wakes: int = 0  # of those: followers of a leader whose node went silent (or
    # restarted)
    pings_sent: int = 0
    quiesced_groups: int = 0  # parked right now


# ---------------------------------------------------------------------------- driver

class _Group:
    __slots__ = ("name", "core", "store", "proposals", "reads", "parked_at", "parked_leading",
                 "parked_under", "durable_term_vote")

    def __init__(self, name: str, core: RaftCore, store: LogStore) -> None:
        self.name = name
        self.core = core
        self.store = store
        self.proposals: dict[int, tuple[int, asyncio.Future[object]]] = {}  # index -> term, fut
        self.reads: dict[bytes, asyncio.Future[None]] = {}
        self.parked_at: int | None = None  # driver tick when it was parked (quiesced)
        self.parked_leading = False
        self.parked_under: tuple[str, ...] = ()  # parked as a follower: (the leader's node,)
        hard = store.hard_state()  # (term, vote) as fsynced: see RaftDriver._messages
        self.durable_term_vote: tuple[int, str | None] = (hard.term, hard.vote)


class RaftDriver:
    def __init__(self, node_id: str, transport: Transport[Message], engine: LogEngine,
                 state_machine: StateMachine, rng: random.Random,
                 config: DriverConfig = DriverConfig(), clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._id = node_id
        self._transport = transport
        self._engine = engine
        self._sm = state_machine
        self._rng = rng
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._groups: dict[str, _Group] = {}
        self._awake: dict[str, _Group] = {}  # the groups that are ticked (not parked)
        default = PeerLiveness.for_raft(config.raft)
        self._liveness = PeerLiveness(config.liveness_ping_ticks or default.ping_ticks,
                                      config.liveness_timeout_ticks or default.timeout_ticks)
        self._parked_followers: dict[str, dict[str, None]] = defaultdict(dict)  # leader -> groups
        self._incarnation = rng.getrandbits(64).to_bytes(8, "big")  # told in our pings
        self._inbox: list[tuple[str, Sequence[GroupMessage[Message]]]] = []
        self._calls: list[tuple[_Group, Callable[[], None], asyncio.Future[Any]]] = []
        self._dirty: dict[str, None] = {}  # groups that may have a Ready (ordered: determinism)
        self._held: dict[str, list[GroupMessage[Message]]] = defaultdict(list)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._start_s = 0.0
        self._ticks_done = 0
        self._read_seq = 0
        self._counts: Counter[str] = Counter()  # DriverStats fields; a frozen copy on stats()
        self._batches: Counter[str] = Counter()
        self._failure: BaseException | None = None
        self._leader_listeners: Listeners[[str]] = Listeners("leader-change listener")
        transport.set_receiver(self._receive)

    # -- public API

    @property
    def node_id(self) -> str:
        return self._id

    def add_group(self, group: str, voters: Sequence[str] = ()) -> None:
        """Host a replica of `group`. A new group (nothing on disk) with `voters` is bootstrapped;
        without voters the replica starts empty and waits for the leader (a joining replica)."""
        if group in self._groups:
            return
        store = self._engine.store(group)
        if voters and store.last_index() == 0 and store.hard_state() == HardState():
            if self._engine.write_many([GroupWrite(group, *bootstrap(voters))]):
                self._engine.sync()
        snapshot = store.snapshot()
        if snapshot.meta.index > 0:  # the core replays the log from here, so start from it
            self._sm.restore(group, snapshot)
        rng = random.Random(self._rng.getrandbits(64))
        core = RaftCore(self._id, store, self._config.raft, rng)
        self._groups[group] = self._awake[group] = _Group(group, core, store)
        self._dirty[group] = None
        self._wake.set()

    def remove_group(self, group: str) -> None:
        g = self._groups.pop(group, None)
        if g is not None:
            self._unpark(g)
            self._awake.pop(group, None)
            _fail_all(g, OutcomeUnknown(f"group {group} removed from {self._id}"))

    def groups(self) -> list[str]:
        return list(self._groups)

    def leader(self, group: str) -> str | None:
        return self._groups[group].core.leader_id

    def is_leader(self, group: str) -> bool:
        return self._groups[group].core.leader_id == self._id

    def on_leader_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(group)` from the loop's turn whenever this replica's role in a group,
        or the leader it knows for it, changes (after that turn's entries are applied). It must
        only note the change (no waiting, no raising): it runs inside the driver's turn."""
        self._leader_listeners.add(listener)

    def lease_read_ok(self, group: str) -> bool:
        """May a linearizable read of `group` be served from the state machine right now, with no
        loop turn? Yes when this replica leads under a valid lease, an entry of its own term is
        committed (so its commit index covers every earlier leader's) and it has applied all it
        knows committed. Otherwise use `read_index`. A quiesced group holds no lease: its first
        read goes through `read_index`, which wakes it. A read served here keeps the group from
        quiescing (which would end the lease the next reads want)."""
        core = self._group(group).core
        ok = (core.lease_valid and core.applied_index >= core.commit_index
              and core.log_term(core.commit_index) == core.term)
        if ok:
            core.note_activity()
        return ok

    async def propose(self, group: str, data: bytes) -> object:
        """Replicate `data` in `group`; return the StateMachine's result for it once applied
        here. Raises NotLeader(leader_id) (also if the entry lost to another leader's),
        ProposalDropped, or OutcomeUnknown."""
        g = self._group(group)
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._call(g, lambda: self._start_proposal(g, data, fut), fut)
        return await fut

    async def read_index(self, group: str) -> None:
        """Return once a linearizable read of `group` may be served from this replica's state
        machine (lease or ReadIndex round). Raises NotLeader if leadership changes meanwhile."""
        g = self._group(group)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._read_seq += 1
        context = self._read_seq.to_bytes(8, "big")
        self._call(g, lambda: self._start_read(g, context, fut), fut)
        try:
            await fut
        finally:  # a caller that gave up (timeout) must not leave its waiter behind
            g.reads.pop(context, None)

    async def transfer_leadership(self, group: str, to_node: str) -> None:
        """Ask this replica (the leader) to hand `group` to `to_node`; returns once the request
        is with the core (the handover itself shows in `leader()`). Raises NotLeader or
        ValueError (not a voter)."""
        g = self._group(group)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def start() -> None:
            g.core.transfer_leadership(to_node)
            _settle(fut, result=None)
        self._call(g, start, fut)
        await fut

    def stats(self) -> DriverStats:
        return DriverStats(**self._counts, batches_sent=MappingProxyType(dict(self._batches)),
                           quiesced_groups=len(self._groups) - len(self._awake))

    def quiesced(self, group: str) -> bool:
        """Is `group` parked here (quiesced, not ticked)?"""
        return self._group(group).parked_at is not None

    async def start(self) -> None:
        await self._transport.start()
        if self._config.persist_in_thread:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"persist-{self._id}")
        self._start_s = self._clock()
        self._tasks = [asyncio.create_task(self._run(), name=f"raft-driver-{self._id}"),
                       asyncio.create_task(self._ticker(), name=f"raft-ticker-{self._id}")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._transport.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for g in self._groups.values():
            _fail_all(g, OutcomeUnknown(f"driver {self._id} stopped"))

    # -- inputs (any coroutine; they only queue)

    def _group(self, group: str) -> _Group:
        if self._failure is not None:
            raise RuntimeError(f"driver {self._id} failed") from self._failure
        g = self._groups.get(group)
        if g is None:
            raise KeyError(f"group {group!r} is not hosted on {self._id}")
        return g

    def _call(self, g: _Group, fn: Callable[[], None], fut: asyncio.Future[Any]) -> None:
        self._calls.append((g, fn, fut))
        self._wake.set()

    def _receive(self, from_node: str, messages: Sequence[GroupMessage[Message]]) -> None:
        self._inbox.append((from_node, messages))
        self._wake.set()

    async def _ticker(self) -> None:
        """Wake the loop at each tick boundary; the loop counts the ticks from the clock."""
        interval_s = self._config.tick_interval_ms / 1000
        boundary = 1
        while True:
            await self._sleep(max(0.0, self._start_s + boundary * interval_s - self._clock()))
            self._wake.set()
            # the next boundary still ahead (a slow turn may have let several pass)
            boundary = max(boundary + 1, int((self._clock() - self._start_s) / interval_s) + 1)

    # -- the loop

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._turn()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a failed fsync leaves no safe way on: stop this node
            log.exception("raft driver %s stopped", self._id)
            self._failure = exc
            for g in self._groups.values():
                _fail_all(g, OutcomeUnknown(f"driver {self._id} failed: {exc!r}"))
            raise

    async def _turn(self) -> None:
        ticks = self._tick_due()
        self._step_inbox()
        self._run_calls()
        if ticks:
            self._wake_followers_of_dead_leaders()
        # Only groups something happened to can have a Ready: no scan of every idle group.
        dirty, self._dirty = self._dirty, {}
        groups = (self._groups.get(name) for name in dirty)
        busy = [(g, g.core.ready()) for g in groups if g is not None and g.core.has_ready()]
        must_sync = self._write(busy)
        if must_sync and not any(rd.snapshot is not None for _, rd in busy):
            await self._pipelined(busy, flush_held=ticks > 0)
        else:  # nothing to fsync, or a snapshot to restore first: in order
            await self._sync(must_sync)
            self._synced(busy)
            for g, rd in busy:
                if rd.snapshot is not None:
                    self._restore(g, rd.snapshot)
            self._send(self._messages(busy), flush_held=ticks > 0)
            for g, rd in busy:
                self._apply(g, rd)
        for g, rd in busy:
            g.core.advance(rd)
            self._maybe_compact(g)
            # advancing (a leader's commit, say) may make more work: look again next turn
            self._dirty[g.name] = None
        self._park_quiesced(dirty)
        self._count(loop_turns=1, ticks=ticks)
        if self._dirty:
            self._wake.set()

    def _run_calls(self) -> None:
        calls, self._calls = self._calls, []
        for g, fn, fut in calls:
            if self._groups.get(g.name) is not g:  # removed since the call was queued
                _settle(fut, exc=KeyError(f"group {g.name!r} is not hosted on {self._id}"))
                continue
            self._wake_group(g)
            try:
                fn()
            except Exception as exc:  # a refused request fails its caller, not the loop
                _settle(fut, exc=exc)
            self._dirty[g.name] = None

    def _tick_due(self) -> int:
        interval_s = self._config.tick_interval_ms / 1000
        due = int((self._clock() - self._start_s) / interval_s) - self._ticks_done
        # Every tick that passed is ticked, never skipped: leases are counted in ticks. Parked
        # groups are not ticked; they get the ticks they missed when they wake.
        for _ in range(max(0, due)):
            for g in self._awake.values():
                g.core.tick()
        if due > 0:
            self._dirty.update(dict.fromkeys(self._awake))
            self._count(group_ticks=due * len(self._awake))
        self._ticks_done += max(0, due)
        return max(0, due)

    def _step_inbox(self) -> None:
        inbox, self._inbox = self._inbox, []
        unknown = 0
        for from_node, messages in inbox:
            ping: Message | None = None
            for gm in messages:
                g = self._groups.get(gm.group)
                if g is None:
                    if gm.group == LIVENESS_GROUP:
                        ping = gm.message
                    else:
                        unknown += 1
                    continue
                self._dirty[gm.group] = None
                if g.parked_at is not None and g.core.wakes_for(gm.message):
                    self._wake_group(g)
                try:
                    g.core.step(gm.message)
                except Exception:  # one malformed message must not stop every group
                    log.exception("group %s: dropping %s", gm.group, gm.message.type)
            if ping is not None:  # after the batch's wake-ups: they credit the silence before
                self._on_ping(from_node, ping.context)
        if unknown:
            self._count(messages_unknown_group=unknown)

    def _on_ping(self, from_node: str, incarnation: bytes) -> None:
        if self._liveness.restarted(from_node, incarnation):
            self._wake_followers_of(from_node, "it restarted")
        self._liveness.heard(from_node, self._ticks_done, incarnation)

    # -- quiescence: parking, waking, node-level liveness

    def _park_quiesced(self, names: Mapping[str, None]) -> None:
        """Stop ticking the groups of this turn whose cores quiesced."""
        for name in names:
            g = self._awake.get(name)
            if g is None or not g.core.quiesced:
                continue
            core = g.core
            if core.role == Role.LEADER:
                g.parked_leading = True
            elif core.leader_id is not None and core.leader_id != self._id:
                g.parked_under = (core.leader_id,)
                self._parked_followers[core.leader_id][name] = None
                self._liveness.alive(core.leader_id, self._ticks_done)  # its QUIESCE just came
            else:
                continue  # a follower without a leader never quiesces; keep ticking it
            g.parked_at = self._ticks_done
            del self._awake[name]
            self._count(groups_parked=1)

    def _wake_group(self, g: _Group, dead_leader: bool = False) -> None:
        """Tick a parked group again. Its core gets the ticks it missed; a follower is also
        credited the ticks its leader's node has been silent (RaftCore.wake bounds that)."""
        parked_at = g.parked_at
        if parked_at is None:
            return
        leader = g.core.leader_id
        silent = (self._liveness.silent_ticks(leader, self._ticks_done)
                  if leader is not None and leader != self._id else 0)
        self._unpark(g)
        g.core.wake(self._ticks_done - parked_at, silent)
        self._awake[g.name] = g
        self._dirty[g.name] = None
        self._count(groups_woken=1, dead_leader_wakes=int(dead_leader))

    def _unpark(self, g: _Group) -> None:
        if g.parked_at is None:
            return
        if not g.parked_leading:
            parked = self._parked_followers[g.parked_under[0]]
            parked.pop(g.name, None)
            if not parked:
                del self._parked_followers[g.parked_under[0]]
        g.parked_at = None
        g.parked_leading = False
        g.parked_under = ()

    def _wake_followers_of_dead_leaders(self) -> None:
        now = self._ticks_done
        for node in [n for n in self._parked_followers if self._liveness.dead(n, now)]:
            silent = self._liveness.silent_ticks(node, now)
            self._wake_followers_of(node, f"no ping for {silent} ticks")

    def _wake_followers_of(self, node: str, why: str) -> None:
        names = list(self._parked_followers.get(node, ()))
        if names:
            log.info("%s: %s %s; waking the %d quiesced groups it led here", self._id, node, why,
                     len(names))
        for name in names:
            self._wake_group(self._groups[name], dead_leader=True)

    def _add_pings(self, out: dict[str, list[GroupMessage[Message]]]) -> None:
        """On ping ticks, a ping for every peer node (in the batch that goes there anyway if
        there is one, so a busy node pays next to nothing). Every peer, not only the followers
        of our parked groups: after a restart we lead nothing, and our first pings are what
        tells the others at once."""
        if not self._config.raft.quiesce_after_ticks:
            return  # no group we lead ever quiesces: nobody needs to hear from us
        if not self._liveness.ping_due(self._ticks_done):
            return
        peers = {v for g in self._groups.values() for v in g.core.voters} - {self._id}
        for node in sorted(peers):
            ping = Message(MessageType.HEARTBEAT, self._id, node, 0, context=self._incarnation)
            out[node].append(GroupMessage(LIVENESS_GROUP, ping))
        self._count(pings_sent=len(peers))

    def _start_proposal(self, g: _Group, data: bytes, fut: asyncio.Future[object]) -> None:
        if fut.done():  # the caller gave up (cancelled) before the loop got to it
            return
        entry = g.core.propose(data)  # NotLeader, ProposalDropped: _run_calls fails the caller
        g.proposals[entry.index] = (entry.term, fut)

    def _start_read(self, g: _Group, context: bytes, fut: asyncio.Future[None]) -> None:
        if fut.done():
            return
        g.core.read_index(context)
        g.reads[context] = fut

    def _write(self, busy: list[tuple[_Group, Ready]]) -> bool:
        """Write every Ready's log part in one group commit; True if an fsync must follow before
        anything that promises it leaves (`_sync`). Written here: a rocksdict write holds the
        GIL wherever it runs; only the fsync, which releases it, goes to the worker thread."""
        writes = [GroupWrite(g.name, rd.hard_state, rd.entries, rd.snapshot) for g, rd in busy
                  if rd.hard_state is not None or rd.entries or rd.snapshot is not None]
        if not writes:
            return False
        self._count(group_commits=1, group_writes=len(writes))
        return self._engine.write_many(writes)

    @staticmethod
    def _synced(busy: list[tuple[_Group, Ready]]) -> None:
        for g, rd in busy:
            if rd.hard_state is not None:
                g.durable_term_vote = (rd.hard_state.term, rd.hard_state.vote)

    async def _sync(self, needed: bool = False) -> None:
        if not needed:
            return
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._engine.sync)
        else:
            self._engine.sync()

    async def _pipelined(self, busy: list[tuple[_Group, Ready]], flush_held: bool) -> None:
        """A turn whose group commit needs an fsync: while the worker syncs, send what promises
        nothing about our log (a leader's appends and heartbeats: Raft thesis §10.2.1; the
        leader counts itself towards a commit only after `advance`) and apply what is
        committed (a quorum holds it already; its state-machine write follows the log's in the
        same WAL). Acks and votes, which promise durability, leave after the fsync."""
        syncing = asyncio.ensure_future(self._sync(True))
        try:
            self._send(self._messages(busy, before_sync=True), flush_held=False)
            for g, rd in busy:
                self._apply(g, rd)
        finally:
            await syncing  # even on a failed apply: the worker must be done with the engine
        self._synced(busy)
        # The held heartbeat acks (this turn's among them) and the pings go with this batch.
        self._send(self._messages(busy, before_sync=False), flush_held=flush_held)

    def _messages(self, busy: list[tuple[_Group, Ready]],
                  before_sync: bool | None = None) -> list[GroupMessage[Message]]:
        """The Readies' messages: all of them (None), or those that may leave before the group
        commit's fsync (True) or only after it (False)."""
        out: list[GroupMessage[Message]] = []
        for g, rd in busy:
            if not rd.messages:
                continue
            hard = rd.hard_state  # a new term or vote must be durable before anything leaves
            early_ok = hard is None or (hard.term, hard.vote) == g.durable_term_vote
            for m in rd.messages:
                if before_sync is None or before_sync == (early_ok and m.type in _EARLY):
                    out.append(GroupMessage(g.name, m))
        return out

    def _restore(self, g: _Group, snapshot: Snapshot) -> None:
        self._sm.restore(g.name, snapshot)
        # Proposals the snapshot jumped over: applied or not, we cannot tell from here.
        for index in [i for i in g.proposals if i <= snapshot.meta.index]:
            _, fut = g.proposals.pop(index)
            _settle(fut, exc=OutcomeUnknown(f"snapshot at {snapshot.meta.index} covers {index}"))

    def _send(self, messages: list[GroupMessage[Message]], flush_held: bool) -> None:
        hold = self._config.hold_heartbeat_responses
        out: dict[str, list[GroupMessage[Message]]] = defaultdict(list)
        for gm in messages:
            to = gm.message.to_id
            if hold and gm.message.type == MessageType.HEARTBEAT_RESP:
                self._held[to].append(gm)
            else:
                out[to].append(gm)
        if flush_held:  # on ticks, like heartbeats
            self._add_pings(out)
        for node in set(out) | (set(self._held) if flush_held else set()):
            batch = out.get(node, [])
            if node in self._held and (batch or flush_held):
                batch.extend(self._held.pop(node))
            if batch:
                self._transport.send(node, batch)
                self._batches[node] += 1
                self._count(messages_sent=len(batch))

    def _apply(self, g: _Group, rd: Ready) -> None:
        normal = [e for e in rd.committed_entries if e.kind == EntryKind.NORMAL]
        results = list(self._sm.apply(g.name, normal)) if normal else []
        if len(results) != len(normal):
            raise RuntimeError(f"state machine returned {len(results)} results for {len(normal)}")
        by_index = dict(zip((e.index for e in normal), results))
        for entry in rd.committed_entries:
            pending = g.proposals.pop(entry.index, None)
            if pending is None:
                continue
            term, fut = pending
            if term == entry.term and entry.kind == EntryKind.NORMAL:
                _settle(fut, result=by_index[entry.index])
            else:  # another leader's entry took the index: ours was never committed
                _settle(fut, exc=NotLeader(g.core.leader_id))
        self._count(entries_applied=len(normal))
        for rs in rd.read_states:  # served after this Ready's entries were applied
            fut_read = g.reads.pop(rs.context, None)
            if fut_read is not None:
                _settle(fut_read, result=None)
        if rd.soft_state is not None and g.reads:
            # "none comes if leadership is lost first": release the waiters now
            for context in list(g.reads):
                _settle(g.reads.pop(context), exc=NotLeader(rd.soft_state.leader_id))
        if rd.soft_state is not None:
            self._leader_listeners.tell(g.name)

    def _maybe_compact(self, g: _Group) -> None:
        applied = g.core.applied_index
        if applied - g.store.first_index() + 1 <= self._config.compact_after_entries:
            return
        snapshot = g.core.build_snapshot(applied, self._sm.snapshot(g.name))
        g.store.compact(snapshot)

    def _count(self, **deltas: int) -> None:
        self._counts.update(deltas)


def _settle(fut: asyncio.Future[Any], *, result: object = None,
            exc: BaseException | None = None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _fail_all(g: _Group, exc: BaseException) -> None:
    for _, fut in g.proposals.values():
        _settle(fut, exc=exc)
    for fut_read in g.reads.values():
        _settle(fut_read, exc=exc)
    g.proposals.clear()
    g.reads.clear()


__all__ = ["RaftDriver", "DriverConfig", "DriverStats", "StateMachine", "LogEngine", "GroupWrite",
           "MemoryLogEngine", "OutcomeUnknown", "NotLeader", "ProposalDropped", "LIVENESS_GROUP"]
