"""The pure Raft core (etcd-io/raft is the model): messages and ticks in, a Ready out.

    core = RaftCore(node_id, store, config, random.Random(seed))
    core.step(msg); core.tick(); core.propose(data); core.read_index(context)
    if core.has_ready():
        rd = core.ready()   # persist, restore snapshot, send, apply, serve reads -- see Ready
        core.advance(rd)

No sockets, no clock, no disk writes (the core only reads its LogStore), no global randomness.
A new group's stores start with `bootstrap(voters)`; a joining replica starts empty.
Idle groups may quiesce (RaftConfig.quiesce_after_ticks): `core.quiesced`, `core.wake(...)`, and
`PeerLiveness` for the node-level liveness that wakes the followers of a dead leader.
"""
from replication.raft.config import RaftConfig
from replication.raft.core import RaftCore, bootstrap
from replication.raft.liveness import PeerLiveness
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
from replication.types import ConfChange, ConfChangeType

__all__ = [
    "CAMPAIGN_TRANSFER",
    "ConfChange",
    "ConfChangeType",
    "Message",
    "MessageType",
    "NotLeader",
    "PeerLiveness",
    "ProposalDropped",
    "COMMIT_NOTICE",
    "QUIESCE",
    "RaftConfig",
    "RaftCore",
    "Ready",
    "ReadState",
    "Role",
    "SoftState",
    "bootstrap",
]
