"""Values that cross the core's boundary: messages, Ready, read states, soft state, errors."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from replication.types import Entry, HardState, Snapshot


class MessageType(enum.IntEnum):
    """Mirrors proto/raft.proto MessageType (same numbers, so the transport maps by value)."""

    UNKNOWN = 0
    PRE_VOTE = 1
    PRE_VOTE_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    APPEND = 5
    APPEND_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    SNAPSHOT_RESP = 10
    TIMEOUT_NOW = 11
    READ_INDEX = 12
    READ_INDEX_RESP = 13


@dataclass(frozen=True, slots=True)
class Message:
    """One Raft message; fields mirror proto/raft.proto Message (`from`/`to` are `from_id`/`to_id`).

    Field use by type: APPEND carries (log_term, index) of the entry before `entries`, and the
    leader's `commit`; APPEND_RESP carries the last matching `index`, or `reject` with a
    `reject_hint` (an index the follower's log may match) and its `log_term`; HEARTBEAT and
    HEARTBEAT_RESP carry the heartbeat round in `context` (a HEARTBEAT whose context is QUIESCE
    tells a caught-up follower that the leader stops heartbeating, one whose context is
    COMMIT_NOTICE only carries a new `commit` and wants no answer; see core.py); (PRE_)VOTE
    carries the candidate's last (log_term, index) and `context` == CAMPAIGN_TRANSFER when a
    leader handed over; READ_INDEX and READ_INDEX_RESP carry the reader's `context`, the
    response the read `index`.
    """

    type: MessageType
    from_id: str
    to_id: str
    term: int
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


CAMPAIGN_TRANSFER = b"transfer"  # (PRE_)VOTE context: the old leader asked for this election
# HEARTBEAT context of a quiescing leader. It rides in `context` (not a new field or type) so
# that every transport that carries coalesced heartbeats carries it as they are; it can never be
# mistaken for a round number, which is always _ROUND_BYTES (8) long.
QUIESCE = b"quiesce"
# HEARTBEAT context of a leader's commit notice: its commit index moved and the follower has no
# entry to receive. Unlike an empty APPEND it is not answered (the answer would say nothing the
# leader needs), which saves a message each way per follower and write.
COMMIT_NOTICE = b"commit"


class Role(enum.IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting (leader changes); never persisted."""

    leader_id: str | None
    role: Role


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read that is safe to serve from the state machine once this Ready's committed entries
    are applied (its `index` is <= the last of them, or was applied earlier)."""

    index: int
    context: bytes
    via_lease: bool  # served under the leader's lease (no quorum round for this read)


@dataclass(frozen=True, slots=True)
class Ready:
    """What the driver must do, in this order, then call `RaftCore.advance(ready)`:

    1. `store.persist(hard_state, entries, snapshot)` -- one atomic, durable write;
    2. if `snapshot` is set, rebuild the state machine from `snapshot.data`;
    3. send `messages` (only after 1: votes and acks promise durability);
    4. apply `committed_entries` in order (NORMAL ones; CONF_CHANGE and NOOP need nothing);
    5. serve `read_states` from the state machine.
    """

    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    messages: tuple[Message, ...] = ()
    committed_entries: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    soft_state: SoftState | None = None


class NotLeader(Exception):
    """Proposals and conf changes go to the leader; `leader_id` is this replica's best guess."""

    def __init__(self, leader_id: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader_id})")
        self.leader_id = leader_id


class ProposalDropped(Exception):
    """The leader refused a proposal for now (transfer in progress, conf change pending, ...)."""
