"""RaftCore: one replica's Raft state machine. Pure: messages and ticks in, Ready out.

Modelled on etcd-io/raft. What this core adds or pins down:

- Leases. Every heartbeat is part of a numbered round (the round travels in `context`). When a
  quorum has acknowledged round r, the leader holds a lease until `sent_tick(r) + lease_ticks`
  of its own clock (RaftConfig.lease_ticks accounts for clock drift). Followers make the lease
  true: while they have heard from a leader within an election timeout (and for one election
  timeout after they boot) they ignore (pre-)vote requests. A new leader serves no lease reads
  until an election timeout has passed since it won, and a leader that sent TIMEOUT_NOW gives
  up lease reads for the rest of its term.
- ReadIndex reads join the next heartbeat round that has not left yet, so a burst of reads costs
  one round.
- Commit notices: when a follower has no entry to receive, the leader tells it a new commit
  index in a HEARTBEAT with context COMMIT_NOTICE, which is not answered (an empty APPEND
  would be), capped at the follower's known match as a heartbeat's commit is.
- Membership is single-replica changes, one at a time; a configuration takes effect when its
  entry is appended (Raft dissertation §4.1), so it is a pure function of the log.
- Quiescence (CockroachDB's), so that idle groups cost no ticks and no heartbeats. A leader
  whose group had no proposal, read or transfer for `quiesce_after_ticks`, with its log
  committed and every follower's match at its last index, sends each follower a HEARTBEAT with
  context QUIESCE and stops its timers. It drops its lease first: while quiesced its clock may
  stand still (a driver need not tick it), and a lease carried across that pause could outlive
  the followers' promise. A follower that gets QUIESCE from its leader while its log ends at
  the leader's commit stops its election timer and does not answer; otherwise it answers, which
  wakes the leader. Any input wakes a replica (`wake`; `wakes_for` names the one message that
  does not). A driver that stopped ticking it passes the ticks it skipped; for a follower it
  may say how many of them passed with no sign of life from the leader's node, and those count
  towards the election timeout and the lease promise as if ticked. Never more than were
  skipped: a follower's promise is never cut short, so a wrong liveness guess costs an
  election at worst, never safety. Finding dead leaders of quiesced
  followers is the driver's job (node-level liveness), since no group message will tell them.
"""
from __future__ import annotations

import random
from typing import Sequence

from replication.logstore import LogStore
from replication.raft.config import RaftConfig
from replication.raft.log import RaftLog
from replication.raft.messages import (
    CAMPAIGN_TRANSFER,
    COMMIT_NOTICE,
    QUIESCE,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    Ready,
    ReadState,
    Role,
    SoftState,
)
from replication.raft.progress import Progress, ProgressState
from replication.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Snapshot,
    SnapshotMeta,
)

MT = MessageType
_ROUND_BYTES = 8


def bootstrap(voters: Sequence[str]) -> tuple[HardState, list[Entry]]:
    """What a new group's replicas persist before their first start (all of them the same):
    `store.persist(*bootstrap(voters))`. A replica joining an existing group starts empty."""
    change = ConfChange(ConfChangeType.BOOTSTRAP, "", tuple(voters))
    entry = Entry(term=1, index=1, kind=EntryKind.CONF_CHANGE, data=change.encode())
    return HardState(term=1, vote=None, commit=1), [entry]


class _PendingRead:
    __slots__ = ("round", "context", "requester", "index")

    def __init__(self, round_: int, context: bytes, requester: str, index: int) -> None:
        self.round = round_
        self.context = context
        self.requester = requester
        self.index = index


class RaftCore:
    def __init__(self, node_id: str, store: LogStore, config: RaftConfig,
                 rng: random.Random) -> None:
        self._id = node_id
        self._cfg = config
        self._rng = rng
        self._log = RaftLog(store)
        hard = store.hard_state()
        self._term = hard.term
        self._vote = hard.vote
        self._role = Role.FOLLOWER
        self._leader: str | None = None
        self._now_ticks = 0  # this replica's clock; leases are measured on it
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_ticks
        # Zero at boot: we may have acked a leader's heartbeat just before a crash, so we keep
        # the promise behind its lease for one election timeout after starting.
        self._leader_contact_ticks = 0
        self._votes: dict[str, bool] = {}
        self._outbox: list[Message] = []
        self._prev_hard = HardState(hard.term, hard.vote, self._log.committed)
        self._prev_soft = SoftState(None, Role.FOLLOWER)
        self._read_states: list[ReadState] = []  # confirmed, waiting to be applied
        self._round = 0  # heartbeat rounds, numbered across terms so old acks never match
        self._quiesced = False
        self._init_leader_state()
        self._conf_base: tuple[str, ...] = store.conf_state().voters
        self._conf_log: list[tuple[int, tuple[str, ...]]] = []
        self._voters: tuple[str, ...] = self._conf_base
        self._note_conf_entries(self._stored_conf_entries(store))
        self._reset_election_timer()

    def _init_leader_state(self) -> None:
        self._progress: dict[str, Progress] = {}
        self._needs_flush = False
        self._transferee: str | None = None
        self._lease_forfeited = False
        self._lease_not_before_tick = 0
        self._lease_start_tick: int | None = None
        self._term_start_index = 0
        self._confirmed_round = self._round
        self._round_sent_tick: dict[int, int] = {}
        self._unsent_round: int | None = None
        self._pending_reads: list[_PendingRead] = []
        self._reads_awaiting_commit: list[tuple[bytes, str, bool]] = []
        self._quiet_ticks = 0  # leader ticks since the last proposal, read or transfer

    # -- public properties -------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._id

    @property
    def role(self) -> Role:
        return self._role

    @property
    def leader_id(self) -> str | None:
        return self._leader

    @property
    def term(self) -> int:
        return self._term

    @property
    def commit_index(self) -> int:
        return self._log.committed

    @property
    def applied_index(self) -> int:
        return self._log.applied

    @property
    def last_index(self) -> int:
        return self._log.last_index()

    @property
    def voters(self) -> tuple[str, ...]:
        """The membership in force: the latest in the log, committed or not."""
        return self._voters

    @property
    def lease_valid(self) -> bool:
        """Would a read be served under the lease right now? Never while quiesced."""
        return self._lease_valid()

    @property
    def quiesced(self) -> bool:
        """Are this replica's timers stopped (see the module docstring)? A driver may stop
        ticking it until something wakes it."""
        return self._quiesced

    def log_term(self, index: int) -> int | None:
        """Term of the entry at `index` in this replica's log (None: compacted or absent)."""
        return self._log.term(index)

    # -- inputs ------------------------------------------------------------------------------

    def tick(self) -> None:
        """One tick of this replica's clock. While quiesced only the clock moves."""
        self._now_ticks += 1
        if self._quiesced:
            return
        self._leader_contact_ticks += 1
        if self._role == Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def propose(self, data: bytes) -> Entry:
        """Append a command; it is committed when it appears in a Ready's committed_entries
        with the same (term, index)."""
        self.wake()
        self._check_can_propose()
        return self._append_new(EntryKind.NORMAL, data)

    def propose_conf_change(self, op: ConfChangeType, node_id: str) -> Entry:
        """Add or remove one voter. One change at a time, and only once this leader committed
        an entry of its term (the single-server change rule, with Ongaro's fix). A leader can't
        remove itself: transfer leadership first."""
        self.wake()
        self._check_can_propose()
        if self._log.committed < self._term_start_index:
            raise ProposalDropped("no entry of this term committed yet")
        if self._conf_log and self._conf_log[-1][0] > self._log.committed:
            raise ProposalDropped("another membership change is pending")
        voters = self._changed_voters(op, node_id)
        data = ConfChange(op, node_id, voters).encode()
        return self._append_new(EntryKind.CONF_CHANGE, data)

    def read_index(self, context: bytes, lease_ok: bool = True) -> None:
        """Ask for a linearizable read. A ReadState with this `context` comes out of a later
        Ready once it is safe; none comes if leadership is lost first (time out and retry).
        Followers forward to the leader (who uses its lease if it holds one)."""
        self.wake()
        if self._role == Role.LEADER:
            self._leader_read(context, self._id, lease_ok)
        elif self._leader is not None:
            self._send(MT.READ_INDEX, self._leader, context=context)
        else:
            raise NotLeader(None)

    def transfer_leadership(self, to_id: str) -> None:
        """Hand leadership to `to_id` once its log is caught up (within an election timeout)."""
        self.wake()
        if self._role != Role.LEADER:
            raise NotLeader(self._leader)
        if to_id == self._id or to_id not in self._voters:
            raise ValueError(f"cannot transfer leadership to {to_id!r}")
        self._transferee = to_id
        self._quiet_ticks = 0
        self._election_elapsed = 0  # the transfer is abandoned after one election timeout
        if self._progress[to_id].match == self._log.last_index():
            self._send_timeout_now(to_id)
        else:
            self._needs_flush = True

    def build_snapshot(self, index: int, data: bytes) -> Snapshot:
        """The state machine's `data` as of applied `index`, with the term and membership filled
        in. The driver keeps it with `store.compact(snapshot)`; the core reads the store's
        snapshot when a follower needs one."""
        term = self._log.term(index)
        if index > self._log.applied or term is None:
            raise ValueError(f"cannot snapshot at {index} (applied {self._log.applied})")
        conf = ConfState(voters=self._voters_at(index))
        return Snapshot(SnapshotMeta(index=index, term=term, conf=conf), data)

    def wake(self, skipped_ticks: int = 0, leader_silent_ticks: int = 0) -> None:
        """Leave quiescence (nothing to do if not quiesced). `skipped_ticks`: ticks of this
        replica's clock that passed while its driver did not tick it; the clock catches up, no
        timer fires for them. `leader_silent_ticks` (a follower's): how many recent ticks passed
        with no sign of life from the leader's node; at most `skipped_ticks` of them count
        towards the lease promise, and at most an election timeout of them towards the
        election timer. Every other input that wakes the replica (see `wakes_for`) does so as
        if no ticks were skipped."""
        if not self._quiesced:
            return
        self._quiesced = False
        skipped = max(0, skipped_ticks)
        self._now_ticks += skipped
        if self._role == Role.LEADER:
            self._wake_leader()
            return
        credit = min(skipped, max(0, leader_silent_ticks))
        self._leader_contact_ticks += credit
        # At most one election timeout towards the timer: the followers of a dead leader wake
        # together, and a full credit would have them all campaign on their next tick (split
        # votes); this way each still waits its own random part, as if heartbeated all along.
        self._election_elapsed += min(credit, self._cfg.election_ticks)

    def wakes_for(self, m: Message) -> bool:
        """Would stepping `m` wake this replica? Every message does, except an ack of one of
        our heartbeat rounds reaching us quiesced: acks are sent late on purpose (drivers hold
        them for the next batch), so the last round's often arrive after the QUIESCE heartbeat
        left. It carries no news; waking for it would undo quiescence at once."""
        if not self._quiesced or m.to_id != self._id:
            return False
        return not (self._role == Role.LEADER and m.type == MT.HEARTBEAT_RESP
                    and m.term == self._term and len(m.context) == _ROUND_BYTES)

    def note_activity(self) -> None:
        """The group was used without an input of the core's (the driver served a read under
        the lease): put off quiescing, which would end the lease."""
        self._quiet_ticks = 0

    def step(self, m: Message) -> None:
        """Handle one message from a peer."""
        if m.to_id != self._id:
            return
        if self.wakes_for(m):
            self.wake()
        if m.term > self._term:
            if not self._step_higher_term(m):
                return
        elif m.term < self._term:
            self._step_lower_term(m)
            return
        if m.type == MT.PRE_VOTE or m.type == MT.VOTE:
            self._handle_vote_request(m)
        elif self._role == Role.LEADER:
            self._step_leader(m)
        elif self._role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # -- the Ready cycle -----------------------------------------------------------------------

    def has_ready(self) -> bool:
        self._flush()
        log = self._log
        return bool(
            self._outbox
            or log.has_unpersisted()
            or log.has_committed_to_apply()
            or self._hard_state() != self._prev_hard
            or self._soft_state() != self._prev_soft
            or any(rs.index <= log.applying for rs in self._read_states)
        )

    def ready(self) -> Ready:
        """What to persist, send, apply and serve now. Call `advance(ready)` after doing it,
        before the next `ready()`. Steps and ticks may happen in between."""
        self._flush()
        entries, snapshot = self._log.take_unpersisted()
        committed = self._log.take_committed()
        hard = self._hard_state()
        soft = self._soft_state()
        ready = Ready(
            hard_state=hard if hard != self._prev_hard else None,
            entries=entries,
            snapshot=snapshot,
            messages=tuple(self._outbox),
            committed_entries=committed,
            read_states=self._take_read_states(),
            soft_state=soft if soft != self._prev_soft else None,
        )
        self._prev_hard, self._prev_soft = hard, soft
        self._outbox = []
        self._unsent_round = None  # its heartbeats are on their way now
        return ready

    def advance(self, ready: Ready) -> None:
        """The driver did everything `ready` asked."""
        if ready.snapshot is not None:
            self._log.stable_snapshot_to(ready.snapshot.meta.index)
            self._log.applied_to(ready.snapshot.meta.index)
        if ready.entries:
            last = ready.entries[-1]
            self._log.stable_to(last.index, last.term)
        if ready.committed_entries:
            self._log.applied_to(ready.committed_entries[-1].index)
        if self._role == Role.LEADER:
            self._progress[self._id].maybe_update(self._persisted_index(), self._now_ticks)
            self._maybe_commit()

    # -- terms ---------------------------------------------------------------------------------

    def _step_higher_term(self, m: Message) -> bool:
        """A message from a later term; False if it is to be ignored."""
        if m.type == MT.PRE_VOTE or m.type == MT.VOTE:
            if m.context != CAMPAIGN_TRANSFER and self._in_lease():
                return False  # keep the promise behind the current leader's lease
        if m.type == MT.PRE_VOTE or (m.type == MT.PRE_VOTE_RESP and not m.reject):
            return True  # pre-votes never move terms
        leader = m.from_id if m.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT) else None
        self._become_follower(m.term, leader)
        return True

    def _step_lower_term(self, m: Message) -> None:
        if (self._cfg.check_quorum or self._cfg.pre_vote) and m.type in (MT.APPEND, MT.HEARTBEAT):
            # A stale leader (partitioned, or our term moved on while we were cut off). Tell it
            # our term so it steps down; otherwise a replica whose term ran ahead never rejoins.
            self._send(MT.APPEND_RESP, m.from_id)
        elif m.type == MT.PRE_VOTE:
            self._send(MT.PRE_VOTE_RESP, m.from_id, reject=True)

    def _in_lease(self) -> bool:
        """Do we keep the promise behind a leader's lease: no votes for others until an
        election timeout has passed since we last heard from it (or since we started)?"""
        cfg = self._cfg
        if not (cfg.check_quorum or cfg.lease_reads) or cfg.unsafe_lease_no_wait:
            return False
        if self._role == Role.LEADER:
            return True  # CheckQuorum steps us down if our lease is no longer deserved
        return self._leader_contact_ticks < self._cfg.election_ticks

    # -- roles ---------------------------------------------------------------------------------

    def _become_follower(self, term: int, leader: str | None) -> None:
        if term != self._term:
            self._term = term
            self._vote = None
        self._role = Role.FOLLOWER
        self._leader = leader
        self._init_leader_state()
        self._reset_election_timer()

    def _become_pre_candidate(self) -> None:
        self._role = Role.PRE_CANDIDATE
        self._leader = None
        self._votes = {}

    def _become_candidate(self) -> None:
        self._term += 1
        self._vote = self._id
        self._role = Role.CANDIDATE
        self._leader = None
        self._reset_election_timer()

    def _become_leader(self) -> None:
        self._role = Role.LEADER
        self._leader = self._id
        self._init_leader_state()
        self._reset_election_timer()
        next_index = self._log.last_index() + 1
        self._progress = {v: Progress(next_index, self._now_ticks) for v in self._voters}
        self._progress[self._id].maybe_update(self._persisted_index(), self._now_ticks)
        if not self._cfg.unsafe_lease_no_wait:
            # An old leader's lease may still run; it cannot outlast one election timeout.
            self._lease_not_before_tick = self._now_ticks + self._cfg.election_ticks
        noop = self._append_new(EntryKind.NOOP, b"")
        self._term_start_index = noop.index

    def _reset_election_timer(self) -> None:
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        e = self._cfg.election_ticks
        self._randomized_timeout = e + self._rng.randrange(e)
        self._votes = {}

    def _promotable(self) -> bool:
        return self._id in self._voters

    def _quorum(self) -> int:
        return len(self._voters) // 2 + 1

    # -- elections -----------------------------------------------------------------------------

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._promotable() and self._election_elapsed >= self._randomized_timeout:
            self._election_elapsed = 0
            self._campaign(pre=self._cfg.pre_vote, transfer=False)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            vote_term, kind = self._term + 1, MT.PRE_VOTE
        else:
            self._become_candidate()
            vote_term, kind = self._term, MT.VOTE
        if self._record_vote(self._id, granted=True):
            return
        context = CAMPAIGN_TRANSFER if transfer else b""
        last = self._log.last_index()
        last_term = self._log.last_term()
        for peer in self._voters:
            if peer != self._id:
                self._send(kind, peer, term=vote_term, log_term=last_term, index=last,
                           context=context)

    def _record_vote(self, voter: str, granted: bool) -> bool:
        """Count a vote; True if the campaign is over (won or lost)."""
        self._votes.setdefault(voter, granted)
        yes = sum(1 for v in self._voters if self._votes.get(v) is True)
        no = sum(1 for v in self._voters if self._votes.get(v) is False)
        if yes >= self._quorum():
            if self._role == Role.PRE_CANDIDATE:
                self._campaign(pre=False, transfer=False)
            else:
                self._become_leader()
            return True
        if len(self._voters) - no < self._quorum():
            self._become_follower(self._term, None)
            return True
        return False

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MT.PRE_VOTE
        can_vote = (self._vote == m.from_id
                    or (self._vote is None and self._leader is None)
                    or (pre and m.term > self._term)
                    or (not pre and self._cfg.unsafe_vote_ignores_prior_vote))
        up_to_date = (self._cfg.unsafe_vote_without_log_check
                      or self._log.is_up_to_date(m.index, m.log_term))
        kind = MT.PRE_VOTE_RESP if pre else MT.VOTE_RESP
        if can_vote and up_to_date:
            self._send(kind, m.from_id, term=m.term)
            if not pre:
                self._election_elapsed = 0
                self._vote = m.from_id
        else:
            self._send(kind, m.from_id, reject=True)

    def _step_candidate(self, m: Message) -> None:
        if m.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            self._become_follower(self._term, m.from_id)  # someone won this term
            self._step_follower(m)
        elif (m.type == MT.PRE_VOTE_RESP and self._role == Role.PRE_CANDIDATE) or (
                m.type == MT.VOTE_RESP and self._role == Role.CANDIDATE):
            self._record_vote(m.from_id, granted=not m.reject)

    # -- follower ------------------------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        if m.type == MT.APPEND:
            self._heard_from_leader(m.from_id)
            self._handle_append(m)
        elif m.type == MT.HEARTBEAT:
            self._heard_from_leader(m.from_id)
            log = self._log
            log.commit_to(min(m.commit, log.last_index()))
            if m.context == QUIESCE and log.committed == m.commit == log.last_index():
                self._quiesced = True  # caught up: wait for the leader with no election timer
                return  # and say nothing: an answer would only wake the leader
            if m.context == COMMIT_NOTICE:
                return  # the leader needs no answer; heartbeat rounds tell it we are alive
            self._send(MT.HEARTBEAT_RESP, m.from_id, context=m.context)
        elif m.type == MT.SNAPSHOT:
            self._heard_from_leader(m.from_id)
            self._handle_snapshot(m)
        elif m.type == MT.TIMEOUT_NOW:
            if self._promotable():
                self._campaign(pre=False, transfer=True)
        elif m.type == MT.READ_INDEX_RESP:
            self._read_states.append(ReadState(m.index, m.context, via_lease=False))

    def _heard_from_leader(self, leader: str) -> None:
        self._election_elapsed = 0
        self._leader_contact_ticks = 0
        self._leader = leader

    def _handle_append(self, m: Message) -> None:
        log = self._log
        if m.index < log.committed:
            self._send(MT.APPEND_RESP, m.from_id, index=log.committed)
            return
        prev_ok = log.matches(m.index, m.log_term) or (
            self._cfg.unsafe_skip_prev_log_check and m.index <= log.last_index())
        if not prev_ok:
            hint = log.find_conflict_by_term(min(m.index, log.last_index()), m.log_term)
            self._send(MT.APPEND_RESP, m.from_id, index=m.index, reject=True,
                       reject_hint=hint, log_term=log.term(hint) or 0)
            return
        last_new = m.index + len(m.entries)
        if m.entries:
            conflict = log.find_conflict(m.entries)
            if conflict:
                self._log_append(list(m.entries[conflict - m.index - 1:]))
        log.commit_to(min(m.commit, last_new))
        self._send(MT.APPEND_RESP, m.from_id, index=last_new)

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        log = self._log
        if snap is None or snap.meta.index <= log.committed:
            self._send(MT.APPEND_RESP, m.from_id, index=log.committed)
            return
        if log.matches(snap.meta.index, snap.meta.term):
            log.commit_to(snap.meta.index)  # our log already has it: just fast-forward
        else:
            log.restore(snap)
            self._conf_base = snap.meta.conf.voters
            self._conf_log = []
            self._set_voters(self._conf_base)
        self._send(MT.APPEND_RESP, m.from_id, index=log.committed)

    # -- leader --------------------------------------------------------------------------------

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self._cfg.election_ticks:
            self._election_elapsed = 0
            if self._cfg.check_quorum and not self._quorum_active():
                self._become_follower(self._term, None)
                return
            for peer, pr in self._progress.items():
                pr.recent_active = peer == self._id
            self._transferee = None  # a transfer that took this long has failed
        self._quiet_ticks += 1
        if self._may_quiesce():
            self._quiesce()
            return
        if self._heartbeat_elapsed >= self._cfg.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._start_round()
        self._forget_old_rounds()

    def _may_quiesce(self) -> bool:
        """Idle long enough, nothing pending, and every replica holds the whole log, committed:
        then no follower needs anything from us until the next proposal or read."""
        after = self._cfg.quiesce_after_ticks
        if not after or self._quiet_ticks < after:
            return False
        if (self._transferee is not None or self._pending_reads or self._reads_awaiting_commit
                or self._unsent_round is not None):
            return False
        last = self._log.last_index()
        if self._log.committed != last:
            return False
        return all(v in self._progress and self._progress[v].match == last
                   for v in self._voters)

    def _quiesce(self) -> None:
        self._quiesced = True
        if not self._cfg.unsafe_quiesce_keeps_lease:
            self._lease_start_tick = None  # our clock may stop now: no lease outlives
            self._round_sent_tick = {}  # quiescence, nor may a late ack of an old round revive one
        commit = self._log.committed
        for peer in self._progress:
            if peer != self._id:
                self._send(MT.HEARTBEAT, peer, commit=commit, context=QUIESCE)

    def _wake_leader(self) -> None:
        """Heartbeat at once (followers learn we are back; a read needs the round anyway) and
        judge CheckQuorum on what we hear from now on, not on acks from before the pause."""
        self._quiet_ticks = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        for peer, pr in self._progress.items():
            pr.recent_active = peer == self._id
        self._start_round()

    def _quorum_active(self) -> bool:
        active = sum(1 for v in self._voters
                     if v == self._id or (v in self._progress and self._progress[v].recent_active))
        return active >= self._quorum()

    def _step_leader(self, m: Message) -> None:
        pr = self._progress.get(m.from_id)
        if m.type == MT.READ_INDEX:
            self._leader_read(m.context, m.from_id, lease_ok=True)
            return
        if pr is None:
            return
        if m.type == MT.APPEND_RESP:
            pr.recent_active = True
            self._handle_append_resp(m, pr)
        elif m.type == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            self._handle_heartbeat_resp(m, pr)

    def _handle_append_resp(self, m: Message, pr: Progress) -> None:
        self._needs_flush = True
        if m.reject:
            if pr.maybe_decrease(m.index, m.reject_hint) and pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            return
        if m.index > self._log.last_index():
            return  # cannot be ours (a lost tail answered late); never trust it
        if not pr.maybe_update(m.index, self._now_ticks):
            return
        if pr.state == ProgressState.PROBE or (
                pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot):
            pr.become_replicate()
        self._maybe_commit()
        if m.from_id == self._transferee and pr.match == self._log.last_index():
            self._send_timeout_now(m.from_id)

    def _handle_heartbeat_resp(self, m: Message, pr: Progress) -> None:
        if len(m.context) == _ROUND_BYTES:
            pr.acked_round = max(pr.acked_round, int.from_bytes(m.context, "big"))
            self._confirm_rounds()
        if pr.match >= self._log.last_index():
            return
        self._needs_flush = True
        stall_ticks = max(2 * self._cfg.heartbeat_ticks, self._cfg.election_ticks // 2)
        if pr.state == ProgressState.PROBE:
            pr.probe_sent = False  # it is alive: probe again
        elif pr.state == ProgressState.REPLICATE:
            if pr.inflight and self._now_ticks - pr.inflight[0][2] >= stall_ticks:
                pr.become_probe()  # an APPEND got lost; find the match again
        elif self._now_ticks - pr.snapshot_sent_tick >= self._cfg.election_ticks:
            pr.become_probe()  # the snapshot got lost; the probe will send another

    def _maybe_commit(self) -> None:
        matches = sorted((self._progress[v].match for v in self._voters if v in self._progress),
                         reverse=True)
        if len(matches) < self._quorum():
            return
        index = matches[self._quorum() - 1]
        if index <= self._log.committed:
            return
        # Raft §5.4.2: count replicas only for entries of our own term.
        if self._log.term(index) != self._term and not self._cfg.unsafe_commit_old_term_by_count:
            return
        self._log.commit_to(index)
        self._needs_flush = True  # followers learn the new commit index
        if self._reads_awaiting_commit and index >= self._term_start_index:
            waiting, self._reads_awaiting_commit = self._reads_awaiting_commit, []
            for context, requester, lease_ok in waiting:
                self._leader_read(context, requester, lease_ok)

    def _send_timeout_now(self, to_id: str) -> None:
        self._lease_forfeited = True  # the target's election ignores our followers' promise
        self._send(MT.TIMEOUT_NOW, to_id)

    def _check_can_propose(self) -> None:
        if self._role != Role.LEADER:
            raise NotLeader(self._leader)
        if self._transferee is not None:
            raise ProposalDropped(f"leadership is moving to {self._transferee}")

    def _append_new(self, kind: EntryKind, data: bytes) -> Entry:
        self._quiet_ticks = 0
        entry = Entry(self._term, self._log.last_index() + 1, kind, data)
        self._log_append([entry])
        self._needs_flush = True
        return entry

    def _persisted_index(self) -> int:
        return 0 if self._log.unstable_snapshot is not None else self._log.offset - 1

    # -- replication ---------------------------------------------------------------------------

    def _flush(self) -> None:
        """Send what each follower may have now: batching happens here, once per Ready, so many
        proposals share one APPEND."""
        if not self._needs_flush or self._role != Role.LEADER:
            return
        self._needs_flush = False
        for peer, pr in self._progress.items():
            if peer != self._id:
                self._send_appends(peer, pr)

    def _send_appends(self, peer: str, pr: Progress) -> None:
        cfg = self._cfg
        while not pr.paused(cfg.max_inflight_msgs, cfg.max_inflight_bytes):
            has_entries = pr.next <= self._log.last_index()
            if not has_entries and pr.state != ProgressState.PROBE:
                self._send_commit_notice(peer, pr)
                return
            if not self._send_append(peer, pr) or not has_entries:
                return
            if pr.state != ProgressState.REPLICATE:
                return

    def _send_commit_notice(self, peer: str, pr: Progress) -> None:
        """Tell a follower with nothing to receive how far it may commit: up to what it is known
        to hold (a heartbeat's rule), with no answer wanted. A lost notice costs nothing: the
        next APPEND or heartbeat round carries the commit index too."""
        commit = min(pr.match, self._log.committed)
        if commit > pr.sent_commit:
            self._send(MT.HEARTBEAT, peer, commit=commit, context=COMMIT_NOTICE)
            pr.sent_commit = commit

    def _send_append(self, peer: str, pr: Progress) -> bool:
        """One APPEND from pr.next (or a snapshot if that part of the log is compacted)."""
        log = self._log
        prev = pr.next - 1
        prev_term = log.term(prev)
        entries: list[Entry] | None = []
        if pr.next <= log.last_index():
            entries = log.entries(pr.next, pr.next + self._cfg.max_entries_per_msg,
                                  self._cfg.max_bytes_per_msg)
        if prev_term is None or entries is None:
            return self._send_snapshot(peer, pr)
        commit = log.committed
        self._send(MT.APPEND, peer, log_term=prev_term, index=prev, entries=tuple(entries),
                   commit=commit)
        pr.sent_commit = commit
        last = entries[-1].index if entries else prev
        pr.sent(last, sum(len(e.data) for e in entries), bool(entries), self._now_ticks)
        return True

    def _send_snapshot(self, peer: str, pr: Progress) -> bool:
        snap = self._log.store.snapshot()
        if snap.meta.index == 0:
            return False
        self._send(MT.SNAPSHOT, peer, snapshot=snap)
        pr.become_snapshot(snap.meta.index, self._now_ticks)
        return True

    # -- heartbeat rounds, leases and reads ----------------------------------------------------

    def _start_round(self) -> int:
        """Heartbeat every follower with a new round number; reads join a round that has not
        been handed to the driver yet, since its heartbeats leave after they arrived."""
        if self._unsent_round is not None:
            return self._unsent_round
        self._round += 1
        self._round_sent_tick[self._round] = self._now_ticks
        context = self._round.to_bytes(_ROUND_BYTES, "big")
        for peer, pr in self._progress.items():
            if peer != self._id:
                commit = min(pr.match, self._log.committed)
                self._send(MT.HEARTBEAT, peer, commit=commit, context=context)
        self._unsent_round = self._round
        self._confirm_rounds()  # a group of one confirms at once
        return self._round

    def _confirm_rounds(self) -> None:
        acked = sorted((self._round if v == self._id else self._progress[v].acked_round
                        for v in self._voters if v in self._progress), reverse=True)
        if len(acked) < self._quorum():
            return
        confirmed = acked[self._quorum() - 1]
        if confirmed <= self._confirmed_round:
            return
        self._confirmed_round = confirmed
        if confirmed in self._round_sent_tick:
            self._lease_start_tick = self._round_sent_tick[confirmed]
        self._round_sent_tick = {r: t for r, t in self._round_sent_tick.items() if r > confirmed}
        ready = [p for p in self._pending_reads if p.round <= confirmed]
        self._pending_reads = [p for p in self._pending_reads if p.round > confirmed]
        for p in ready:
            self._answer_read(p.requester, p.context, p.index, via_lease=False)

    def _forget_old_rounds(self) -> None:
        """Rounds sent longer than a lease ago can no longer extend the lease; dropping them
        keeps a leader without a quorum (CheckQuorum off) from growing without bound. Reads
        wait on round numbers, not on this table."""
        horizon = self._now_ticks - self._cfg.lease_ticks
        if self._round_sent_tick and min(self._round_sent_tick.values()) < horizon:
            self._round_sent_tick = {r: t for r, t in self._round_sent_tick.items()
                                     if t >= horizon}

    def _lease_valid(self) -> bool:
        cfg = self._cfg
        if not cfg.lease_reads or self._role != Role.LEADER or self._lease_forfeited:
            return False
        if self._quiesced and not cfg.unsafe_quiesce_keeps_lease:
            return False
        if self._now_ticks < self._lease_not_before_tick or self._lease_start_tick is None:
            return False
        if cfg.unsafe_lease_ignores_expiry:
            return True
        return self._now_ticks < self._lease_start_tick + cfg.lease_ticks

    def _leader_read(self, context: bytes, requester: str, lease_ok: bool) -> None:
        self._quiet_ticks = 0
        if self._log.committed < self._term_start_index:
            # Our commit index may lag the group's until an entry of our term commits.
            self._reads_awaiting_commit.append((context, requester, lease_ok))
            return
        index = self._log.committed
        if self._voters == (self._id,):
            self._answer_read(requester, context, index, via_lease=False)
        elif lease_ok and self._lease_valid():
            self._answer_read(requester, context, index, via_lease=True)
        else:
            self._pending_reads.append(_PendingRead(self._start_round(), context, requester, index))

    def _answer_read(self, requester: str, context: bytes, index: int, via_lease: bool) -> None:
        if requester == self._id:
            self._read_states.append(ReadState(index, context, via_lease))
        else:
            self._send(MT.READ_INDEX_RESP, requester, index=index, context=context)

    def _take_read_states(self) -> tuple[ReadState, ...]:
        applying = self._log.applying
        out = tuple(rs for rs in self._read_states if rs.index <= applying)
        if out:
            self._read_states = [rs for rs in self._read_states if rs.index > applying]
        return out

    # -- membership ----------------------------------------------------------------------------

    def _changed_voters(self, op: ConfChangeType, node_id: str) -> tuple[str, ...]:
        if op == ConfChangeType.ADD_VOTER and node_id not in self._voters:
            return (*self._voters, node_id)
        if op == ConfChangeType.REMOVE_VOTER and node_id in self._voters and node_id != self._id:
            return tuple(v for v in self._voters if v != node_id)
        raise ValueError(f"cannot {op.name} {node_id!r} with voters {self._voters}")

    def _log_append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        self._log.append(entries)
        if self._conf_log and self._conf_log[-1][0] >= first:
            self._conf_log = [(i, v) for i, v in self._conf_log if i < first]
            self._set_voters(self._conf_log[-1][1] if self._conf_log else self._conf_base)
        self._note_conf_entries(entries)

    def _note_conf_entries(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            if entry.kind == EntryKind.CONF_CHANGE:
                voters = ConfChange.decode(entry.data).voters
                self._conf_log.append((entry.index, voters))
                self._set_voters(voters)

    @staticmethod
    def _stored_conf_entries(store: LogStore) -> list[Entry]:
        first, last = store.first_index(), store.last_index()
        if last < first:
            return []
        return [e for e in store.entries(first, last + 1) if e.kind == EntryKind.CONF_CHANGE]

    def _voters_at(self, index: int) -> tuple[str, ...]:
        for conf_index, voters in reversed(self._conf_log):
            if conf_index <= index:
                return voters
        return self._conf_base

    def _set_voters(self, voters: tuple[str, ...]) -> None:
        if voters == self._voters:
            return
        self._voters = voters
        if self._role != Role.LEADER:
            return
        next_index = self._log.last_index() + 1
        for v in voters:
            if v not in self._progress:
                self._progress[v] = Progress(next_index, self._now_ticks)
        for v in [p for p in self._progress if p not in voters]:
            del self._progress[v]
        if self._transferee not in voters:
            self._transferee = None
        self._needs_flush = True
        self._maybe_commit()

    # -- helpers -------------------------------------------------------------------------------

    def _hard_state(self) -> HardState:
        return HardState(self._term, self._vote, self._log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(self._leader, self._role)

    def _send(self, kind: MessageType, to_id: str, *, term: int | None = None,
              log_term: int = 0, index: int = 0, entries: tuple[Entry, ...] = (),
              commit: int = 0, reject: bool = False, reject_hint: int = 0,
              snapshot: Snapshot | None = None, context: bytes = b"") -> None:
        self._outbox.append(Message(kind, self._id, to_id, self._term if term is None else term,
                                    log_term, index, entries, commit, reject, reject_hint,
                                    snapshot, context))
