"""Core Message <-> proto round trips, and the slim heartbeat form."""
from __future__ import annotations

from node.raft_codec import RaftCodec, message_from_proto, message_to_proto
from proto import raft_pb2
from replication.raft.messages import Message, MessageType
from replication.transport import GroupMessage
from replication.types import ConfState, Entry, EntryKind, Snapshot, SnapshotMeta

FULL = Message(
    type=MessageType.APPEND, from_id="n1", to_id="n2", term=7, log_term=6, index=41,
    entries=(Entry(7, 42, EntryKind.NOOP), Entry(7, 43, EntryKind.NORMAL, b"\x00put"),
             Entry(7, 44, EntryKind.CONF_CHANGE, b"1|n4|n1,n2,n4")),
    commit=40, reject=True, reject_hint=39,
    snapshot=Snapshot(SnapshotMeta(30, 5, ConfState(("n1", "n2", "n3"))), b"state"),
    context=b"ctx")


def test_every_field_round_trips_through_the_wire_bytes() -> None:
    wire = message_to_proto(FULL).SerializeToString()
    assert message_from_proto(raft_pb2.Message.FromString(wire)) == FULL


def test_absent_snapshot_stays_absent() -> None:
    msg = Message(MessageType.VOTE, "n1", "n3", term=2, log_term=1, index=9)
    assert message_from_proto(message_to_proto(msg)) == msg


def test_every_message_type_maps_by_value() -> None:
    for kind in MessageType:
        assert raft_pb2.MessageType.Name(int(kind)) == f"MSG_{kind.name}"


def test_heartbeats_go_slim_and_get_their_ids_from_the_batch() -> None:
    codec = RaftCodec()
    hb = Message(MessageType.HEARTBEAT, "n1", "n2", term=3, commit=12, context=b"\x00\x05")
    pb, heartbeat = codec.encode(GroupMessage("p9", hb))
    assert heartbeat
    assert getattr(pb.message, "from") == "" and pb.message.to == ""
    assert codec.decode(pb, "n1", "n2", True) == GroupMessage("p9", hb)
    pb, heartbeat = codec.encode(GroupMessage("p9", FULL))
    assert not heartbeat
    assert codec.decode(pb, "ignored", "ignored", False) == GroupMessage("p9", FULL)
