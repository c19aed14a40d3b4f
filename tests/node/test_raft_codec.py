"""The compact Raft frame (node/raft_codec.py): every message type and field round trips, ids
the batch already says are left out, and malformed bytes give a CodecError, never a crash or a
silently shortened message."""
from __future__ import annotations

import dataclasses
import random
import struct

import pytest

from node.raft_codec import (
    FRAME_VERSION,
    MESSAGE_FIELDS,
    CodecError,
    RaftCodec,
    decode_frame,
    encode_frame,
)
from proto import raft_pb2
from replication.raft.messages import Message, MessageType
from replication.transport import GroupMessage
from replication.types import ConfState, Entry, EntryKind, Snapshot, SnapshotMeta

FULL = Message(
    type=MessageType.APPEND, from_id="n1", to_id="n2", term=7, log_term=6, index=41,
    entries=(Entry(7, 42, EntryKind.NOOP), Entry(7, 43, EntryKind.NORMAL, b"\x00put"),
             Entry(7, 44, EntryKind.CONF_CHANGE, b"1|n4|n1,n2,n4")),
    commit=40, reject=True, reject_hint=39,
    snapshot=Snapshot(SnapshotMeta(30, 5, ConfState(("n1", "n2", "n3"), ("n9",))), b"state"),
    context=b"ctx")
BIG = 2**64 - 1


def round_trip(messages: list[GroupMessage[Message]], frm: str = "n1",
               to: str = "n2") -> list[GroupMessage[Message]]:
    return decode_frame(encode_frame(messages, frm, to), frm, to)


def sample_frame() -> bytes:
    hb = Message(MessageType.HEARTBEAT, "n1", "n2", 3, commit=12, context=b"\x00" * 8)
    return encode_frame([GroupMessage("p1", FULL), GroupMessage("meta", hb),
                         GroupMessage("p2", Message(MessageType.APPEND_RESP, "n1", "n2", 3,
                                                    index=9))], "n1", "n2")


def test_every_field_round_trips() -> None:
    assert round_trip([GroupMessage("p7", FULL)]) == [GroupMessage("p7", FULL)]


@pytest.mark.parametrize("kind", list(MessageType))
def test_every_message_type_round_trips(kind: MessageType) -> None:
    plain = Message(kind, "n1", "n2", term=3)
    rich = dataclasses.replace(FULL, type=kind, term=BIG, commit=BIG, log_term=BIG, index=BIG,
                               reject_hint=BIG)
    msgs = [GroupMessage("g", plain), GroupMessage("g", rich)]
    assert round_trip(msgs) == msgs


def test_entries_with_empty_and_large_data() -> None:
    large = bytes(random.Random(1).getrandbits(8) for _ in range(1 << 16)) * 32  # 2 MB
    msg = Message(MessageType.APPEND, "a", "b", 2, log_term=1, index=0, commit=0,
                  entries=(Entry(2, 1, EntryKind.NORMAL, b""), Entry(2, 2, EntryKind.NORMAL, large),
                           Entry(2, 3, EntryKind.NOOP)))
    (got,) = round_trip([GroupMessage("p", msg)], "a", "b")
    assert got.message == msg
    assert got.message.entries[1].data == large


def test_snapshots_round_trip_empty_and_with_data() -> None:
    for snap in (Snapshot(), Snapshot(SnapshotMeta(10, 2, ConfState(("a", "b", "c"))), b""),
                 Snapshot(SnapshotMeta(BIG, 9, ConfState((), ("l1", "l2"))), b"x" * 100_000)):
        msg = Message(MessageType.SNAPSHOT, "a", "b", 9, snapshot=snap)
        assert round_trip([GroupMessage("p", msg)], "a", "b") == [GroupMessage("p", msg)]


def test_ids_left_out_when_the_batch_says_them() -> None:
    hb = Message(MessageType.HEARTBEAT, "n1", "n2", 3, commit=12, context=b"\x00\x05")
    slim = encode_frame([GroupMessage("p9", hb)], "n1", "n2")
    fat = encode_frame([GroupMessage("p9", hb)], "x", "y")  # ids differ: carried explicitly
    assert len(fat) == len(slim) + 2 * (2 + len("n1"))
    assert decode_frame(slim, "n1", "n2") == [GroupMessage("p9", hb)]
    assert decode_frame(fat, "x", "y") == [GroupMessage("p9", hb)]
    # a slim frame takes its ids from the batch it arrived in
    assert decode_frame(slim, "z1", "z2")[0].message.from_id == "z1"


def test_heartbeat_batch_is_small_and_keeps_order() -> None:
    hbs = [GroupMessage(f"p{i:016x}", Message(MessageType.HEARTBEAT, "n1", "n2", 5, commit=i,
                                              context=i.to_bytes(8, "big")))
           for i in range(100)]
    resps = [GroupMessage(f"p{i:016x}", Message(MessageType.HEARTBEAT_RESP, "n1", "n2", 5,
                                                context=i.to_bytes(8, "big")))
             for i in range(100)]
    mixed = [m for pair in zip(hbs, resps) for m in pair]
    frame = encode_frame(mixed, "n1", "n2")
    assert len(frame) < 200 * 50  # group (19) + header (18) + context (12) each
    assert decode_frame(frame, "n1", "n2") == mixed


def test_empty_frame() -> None:
    assert round_trip([]) == []


def test_codec_parts_api_matches_encode_frame() -> None:
    codec = RaftCodec()
    msgs = [GroupMessage("p1", FULL), GroupMessage("p2", Message(MessageType.VOTE, "n1", "n2", 4))]
    parts = [b""]
    size = sum(codec.add(parts, m, "n1", "n2") for m in msgs)
    frame = codec.frame(parts, len(msgs))
    assert frame == encode_frame(msgs, "n1", "n2")
    assert size == len(frame) - 5  # everything but the frame header
    assert codec.decode(frame, "n1", "n2") == msgs
    # the codec's name cache gives the same answers the second time
    assert codec.decode(frame, "n1", "n2") == msgs


def test_the_codec_knows_every_field_of_the_core_message() -> None:
    # A field added to the core's Message must be taught to the codec, not dropped on the wire.
    assert tuple(f.name for f in dataclasses.fields(Message)) == MESSAGE_FIELDS


def test_enum_numbers_match_raft_proto() -> None:
    for kind in MessageType:
        assert raft_pb2.MessageType.Name(int(kind)) == f"MSG_{kind.name}"
    for entry_kind in EntryKind:
        assert raft_pb2.EntryType.Name(int(entry_kind)) == f"ENTRY_{entry_kind.name}"


def test_every_truncation_is_a_codec_error() -> None:
    frame = sample_frame()
    for cut in range(len(frame)):
        with pytest.raises(CodecError):
            decode_frame(frame[:cut], "n1", "n2")


def test_trailing_bytes_wrong_version_and_unknown_values_are_codec_errors() -> None:
    frame = sample_frame()
    with pytest.raises(CodecError, match="after the last message"):
        decode_frame(frame + b"\x00", "n1", "n2")
    with pytest.raises(CodecError, match="version"):
        decode_frame(bytes([FRAME_VERSION + 1]) + frame[1:], "n1", "n2")
    one = encode_frame([GroupMessage("g", Message(MessageType.VOTE, "a", "b", 1))], "a", "b")
    type_at = 5 + 2 + 1  # frame header, group length, group "g"
    with pytest.raises(CodecError, match="unknown message type"):
        decode_frame(one[:type_at] + b"\xff" + one[type_at + 1:], "a", "b")
    with pytest.raises(CodecError, match="unknown flags"):
        decode_frame(one[:type_at + 1] + b"\x80" + one[type_at + 2:], "a", "b")
    with pytest.raises(CodecError, match="cannot fit"):
        decode_frame(struct.pack(">BI", FRAME_VERSION, 2**32 - 1), "a", "b")
    entry = encode_frame([GroupMessage("g", Message(MessageType.APPEND, "a", "b", 1, entries=(
        Entry(1, 1, EntryKind.NORMAL, b"x"),)))], "a", "b")
    kind_at = len(entry) - 1 - 4 - 1  # ... kind:u8 dlen:u32 data
    with pytest.raises(CodecError, match="unknown entry kind"):
        decode_frame(entry[:kind_at] + b"\x77" + entry[kind_at + 1:], "a", "b")
    bad_name = encode_frame([GroupMessage("\u00e9", Message(MessageType.VOTE, "a", "b", 1))],
                            "a", "b")
    with pytest.raises(CodecError, match="UTF-8"):
        decode_frame(bad_name.replace("\u00e9".encode(), b"\xff\xfe"), "a", "b")


def test_random_corruption_never_crashes() -> None:
    frame = sample_frame()
    rng = random.Random(7)
    for _ in range(3000):
        corrupt = bytearray(frame)
        for _ in range(rng.randint(1, 4)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        try:
            messages = decode_frame(bytes(corrupt), "n1", "n2")
        except CodecError:
            continue
        assert all(isinstance(m.message, Message) for m in messages)  # decoded to something


def test_an_empty_group_name_round_trips() -> None:
    # the driver's node-level liveness pings travel as group "" (no group has that name)
    ping = Message(MessageType.HEARTBEAT, "n1", "n2", 0, context=b"\x01" * 8)
    msgs = [GroupMessage("", ping), GroupMessage("p1", FULL)]
    assert round_trip(msgs) == msgs
