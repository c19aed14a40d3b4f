"""The one place where the core's Raft values meet proto/raft.proto.

Heartbeats (HEARTBEAT, HEARTBEAT_RESP) travel in Batch.heartbeats without `from`/`to`: a replica's
id is its node's id, so the batch's sender and receiver say it, and a node pair's coalesced
heartbeats cost only group, type, term, commit and context each.
"""
from __future__ import annotations

from proto import raft_pb2
from replication.raft.messages import Message, MessageType
from replication.transport import GroupMessage
from replication.types import ConfState, Entry, EntryKind, Snapshot, SnapshotMeta

HEARTBEAT_TYPES = frozenset({MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESP})


def entry_to_proto(entry: Entry) -> raft_pb2.Entry:
    return raft_pb2.Entry(term=entry.term, index=entry.index, type=int(entry.kind), data=entry.data)


def entry_from_proto(pb: raft_pb2.Entry) -> Entry:
    return Entry(term=pb.term, index=pb.index, kind=EntryKind(pb.type), data=pb.data)


def snapshot_to_proto(snap: Snapshot) -> raft_pb2.Snapshot:
    # proto SnapshotMeta has no learners: the core has none (membership is voters only).
    meta = raft_pb2.SnapshotMeta(index=snap.meta.index, term=snap.meta.term,
                                 voters=list(snap.meta.conf.voters))
    return raft_pb2.Snapshot(meta=meta, data=snap.data)


def snapshot_from_proto(pb: raft_pb2.Snapshot) -> Snapshot:
    conf = ConfState(voters=tuple(pb.meta.voters))
    return Snapshot(SnapshotMeta(index=pb.meta.index, term=pb.meta.term, conf=conf), pb.data)


def message_to_proto(msg: Message, with_ids: bool = True) -> raft_pb2.Message:
    pb = raft_pb2.Message(type=int(msg.type), term=msg.term, log_term=msg.log_term,
                          index=msg.index, commit=msg.commit, reject=msg.reject,
                          reject_hint=msg.reject_hint, context=msg.context)
    if with_ids:
        setattr(pb, "from", msg.from_id)  # `from` is a Python keyword
        pb.to = msg.to_id
    if msg.entries:
        pb.entries.extend(entry_to_proto(e) for e in msg.entries)
    if msg.snapshot is not None:
        pb.snapshot.CopyFrom(snapshot_to_proto(msg.snapshot))
    return pb


def message_from_proto(pb: raft_pb2.Message, from_id: str | None = None,
                       to_id: str | None = None) -> Message:
    return Message(
        type=MessageType(pb.type),
        from_id=from_id if from_id is not None else getattr(pb, "from"),
        to_id=to_id if to_id is not None else pb.to,
        term=pb.term, log_term=pb.log_term, index=pb.index,
        entries=tuple(entry_from_proto(e) for e in pb.entries),
        commit=pb.commit, reject=pb.reject, reject_hint=pb.reject_hint,
        snapshot=snapshot_from_proto(pb.snapshot) if pb.HasField("snapshot") else None,
        context=pb.context)


class RaftCodec:
    """BatchCodec for node/raft_transport.py carrying the core's Message."""

    def encode(self, message: GroupMessage[Message]) -> tuple[raft_pb2.GroupMessage, bool]:
        heartbeat = message.message.type in HEARTBEAT_TYPES
        pb = message_to_proto(message.message, with_ids=not heartbeat)
        return raft_pb2.GroupMessage(group=message.group, message=pb), heartbeat

    def decode(self, pb: raft_pb2.GroupMessage, from_node: str, to_node: str,
               heartbeat: bool) -> GroupMessage[Message]:
        if heartbeat:
            return GroupMessage(pb.group, message_from_proto(pb.message, from_node, to_node))
        return GroupMessage(pb.group, message_from_proto(pb.message))


__all__ = ["RaftCodec", "message_to_proto", "message_from_proto", "entry_to_proto",
           "entry_from_proto", "snapshot_to_proto", "snapshot_from_proto", "HEARTBEAT_TYPES"]
