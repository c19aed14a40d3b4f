"""The Raft wire form: every message one node has for another at one moment, as ONE compact byte
string (the `frame` of proto/raft.proto's Batch). Replaces a protobuf Message per Raft message:
building and parsing nested protobuf objects (and the core's dataclasses from them) was a visible
share of a node's CPU per write (docs/performance.md).

A frame (all integers big-endian, no padding):

    frame    := version:u8 (=1) count:u32 message{count}
    message  := glen:u16 group:utf8[glen] type:u8 flags:u8 term:u64 commit:u64
                [log_term:u64 index:u64 reject_hint:u64]              if flags & LONG
                [n:u32 (term:u64 index:u64 kind:u8 dlen:u32 data){n}] if flags & ENTRIES
                [clen:u32 context]                                    if flags & CONTEXT
                [flen:u16 from:utf8 tlen:u16 to:utf8]                 if flags & IDS
                [index:u64 term:u64 voters learners dlen:u64 data]    if flags & SNAPSHOT
    voters, learners := n:u16 (len:u16 name:utf8){n}
    flags    := REJECT 0x01 | LONG 0x02 | ENTRIES 0x04 | CONTEXT 0x08 | IDS 0x10 | SNAPSHOT 0x20

`type` is the core's MessageType value and `kind` its EntryKind value (the same numbers as the
enums of proto/raft.proto). A replica's id is its node's id, so a message from the batch's sender
to the batch's receiver (every message the driver sends) leaves its ids out; IDS is only set for
anything else. Heartbeats and their responses are just short messages (no LONG, no ENTRIES): a
node pair's coalesced heartbeats cost ~40 bytes each and ride the same frame as the appends.

`decode` never trusts the bytes: a truncated or malformed frame raises `CodecError` (a
ValueError) naming what was wrong, never a crash or a silently shortened message.
"""
from __future__ import annotations

import struct
from dataclasses import fields
from typing import Sequence

from replication.raft.messages import Message, MessageType
from replication.transport import GroupMessage
from replication.types import ConfState, Entry, EntryKind, Snapshot, SnapshotMeta

__all__ = ["RaftCodec", "CodecError", "encode_frame", "decode_frame", "FRAME_VERSION",
           "HEARTBEAT_TYPES", "MESSAGE_FIELDS"]

FRAME_VERSION = 1
HEARTBEAT_TYPES = frozenset({MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESP})
# The fields of the core's Message this codec carries. tests/node/test_raft_codec.py fails if the
# core's Message gains or loses one, so a new field can never be dropped silently on the wire.
MESSAGE_FIELDS = ("type", "from_id", "to_id", "term", "log_term", "index", "entries", "commit",
                  "reject", "reject_hint", "snapshot", "context")

REJECT, LONG, ENTRIES, CONTEXT, IDS, SNAPSHOT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_KNOWN_FLAGS = REJECT | LONG | ENTRIES | CONTEXT | IDS | SNAPSHOT

_FRAME_HEAD = struct.Struct(">BI")  # version, count
_HEAD = struct.Struct(">BBQQ")  # type, flags, term, commit
_LONG = struct.Struct(">QQQ")  # log_term, index, reject_hint
_ENTRY = struct.Struct(">QQBI")  # term, index, kind, data length
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_SNAP_HEAD = struct.Struct(">QQ")  # index, term

# Enum values -> members by list lookup (calling the enum per message is slow); built from the
# enums, so a type added to the core is carried without touching this file.
_TYPES: list[MessageType | None] = [None] * (max(MessageType) + 1)
for _t in MessageType:
    _TYPES[_t] = _t
_KINDS: list[EntryKind | None] = [None] * (max(EntryKind) + 1)
for _k in EntryKind:
    _KINDS[_k] = _k


class CodecError(ValueError):
    """The bytes are not a frame this codec can read (truncated, corrupt, or a newer version)."""


# ---------------------------------------------------------------------------- encoding

def _str16(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"name too long for the raft wire: {value[:40]!r}...")
    return _U16.pack(len(raw)) + raw


def _strs(values: Sequence[str]) -> bytes:
    return _U16.pack(len(values)) + b"".join(_str16(v) for v in values)


class _Encoder:
    """Appends the parts of messages to a list; the frame is their join (entry data is never
    copied before that join)."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[str, bytes] = {}  # group -> its encoded name (u16 length + UTF-8)

    def add(self, parts: list[bytes], gm: GroupMessage[Message], from_node: str,
            to_node: str) -> int:
        """Append one message's parts; return how many bytes they hold."""
        m = gm.message
        prefix = self._groups.get(gm.group)
        if prefix is None:
            prefix = _str16(gm.group)
            if len(self._groups) < 4096:  # the groups a node hosts; bounded all the same
                self._groups[gm.group] = prefix
        flags = REJECT if m.reject else 0
        tail: list[bytes] = []
        if m.log_term or m.index or m.reject_hint:
            flags |= LONG
            tail.append(_LONG.pack(m.log_term, m.index, m.reject_hint))
        entries = m.entries
        if entries:
            flags |= ENTRIES
            tail.append(_U32.pack(len(entries)))
            pack = _ENTRY.pack
            for e in entries:
                data = e.data
                tail.append(pack(e.term, e.index, e.kind, len(data)))
                if data:
                    tail.append(data)
        if m.context:
            flags |= CONTEXT
            tail.append(_U32.pack(len(m.context)))
            tail.append(m.context)
        if m.from_id != from_node or m.to_id != to_node:
            flags |= IDS
            tail.append(_str16(m.from_id) + _str16(m.to_id))
        if m.snapshot is not None:
            flags |= SNAPSHOT
            meta = m.snapshot.meta
            data = m.snapshot.data
            tail.append(_SNAP_HEAD.pack(meta.index, meta.term) + _strs(meta.conf.voters)
                        + _strs(meta.conf.learners) + _U64.pack(len(data)))
            tail.append(data)
        parts.append(prefix)
        parts.append(_HEAD.pack(m.type, flags, m.term, m.commit))
        if tail:
            parts.extend(tail)
            return len(prefix) + _HEAD.size + sum(map(len, tail))
        return len(prefix) + _HEAD.size


def encode_frame(messages: Sequence[GroupMessage[Message]], from_node: str,
                 to_node: str) -> bytes:
    """All of `messages` as one frame (from `from_node` to `to_node`)."""
    enc = _Encoder()
    parts = [b""]
    for gm in messages:
        enc.add(parts, gm, from_node, to_node)
    parts[0] = _FRAME_HEAD.pack(FRAME_VERSION, len(messages))
    return b"".join(parts)


# ---------------------------------------------------------------------------- decoding

def _name(raw: bytes, names: dict[bytes, str], what: str) -> str:
    """A group or node name, decoded once per distinct name (they repeat in every frame)."""
    try:
        name = raw.decode()
    except UnicodeDecodeError:
        raise CodecError(f"malformed raft frame: {what} is not UTF-8") from None
    if len(names) < 4096:
        names[raw] = name
    return name


def _names(buf: bytes, pos: int, names: dict[bytes, str], what: str) -> tuple[tuple[str, ...], int]:
    (count,) = _U16.unpack_from(buf, pos)
    pos += 2
    out = []
    for _ in range(count):
        name, pos = _name_at(buf, pos, names, what)
        out.append(name)
    return tuple(out), pos


def _name_at(buf: bytes, pos: int, names: dict[bytes, str], what: str) -> tuple[str, int]:
    """One length-prefixed name (interned through `names`) and the position after it."""
    (size,) = _U16.unpack_from(buf, pos)
    raw = buf[pos + 2:pos + 2 + size]
    pos += 2 + size
    if pos > len(buf):
        raise CodecError(f"truncated raft frame: {what}")
    return names.get(raw) or _name(raw, names, what), pos


def _decode(buf: bytes, from_node: str, to_node: str,
            names: dict[bytes, str]) -> list[GroupMessage[Message]]:
    """The frame parser. Fixed-size fields are read with Struct.unpack_from, which refuses to
    read past the end (struct.error); every variable-size field is checked against the end
    before it is used, so a short frame never yields a shortened message."""
    end = len(buf)
    version, count = _FRAME_HEAD.unpack_from(buf, 0)
    if version != FRAME_VERSION:
        raise CodecError(f"raft frame version {version}, this node reads {FRAME_VERSION}")
    pos = _FRAME_HEAD.size
    # every message takes at least its header, so `count` cannot make us loop for nothing
    if count * (_U16.size + _HEAD.size) > end - pos:
        raise CodecError(f"truncated raft frame: {count} messages cannot fit")
    head, long_, entry_head = _HEAD.unpack_from, _LONG.unpack_from, _ENTRY.unpack_from
    u16, u32 = _U16.unpack_from, _U32.unpack_from
    types, kinds, n_types, n_kinds = _TYPES, _KINDS, len(_TYPES), len(_KINDS)
    out: list[GroupMessage[Message]] = []
    for _ in range(count):
        (size,) = u16(buf, pos)
        raw = buf[pos + 2:pos + 2 + size]
        group = names.get(raw) or _name(raw, names, "group")
        type_value, flags, term, commit = head(buf, pos + 2 + size)
        pos += 2 + size + _HEAD.size
        mtype = types[type_value] if type_value < n_types else None
        if mtype is None:
            raise CodecError(f"malformed raft frame: unknown message type {type_value}")
        log_term = index = reject_hint = 0
        entries: tuple[Entry, ...] = ()
        context = b""
        from_id, to_id = from_node, to_node
        snapshot = None
        if flags:
            if flags & ~_KNOWN_FLAGS:
                raise CodecError(f"malformed raft frame: unknown flags {flags:#x}")
            if flags & LONG:
                log_term, index, reject_hint = long_(buf, pos)
                pos += _LONG.size
            if flags & ENTRIES:
                (n,) = u32(buf, pos)
                pos += 4
                if n * _ENTRY.size > end - pos:
                    raise CodecError(f"truncated raft frame: {n} entries cannot fit")
                got = []
                for _ in range(n):
                    e_term, e_index, kind_value, dlen = entry_head(buf, pos)
                    pos += _ENTRY.size
                    kind = kinds[kind_value] if kind_value < n_kinds else None
                    if kind is None:
                        raise CodecError(f"malformed raft frame: unknown entry kind {kind_value}")
                    if pos + dlen > end:
                        raise CodecError(f"truncated raft frame: entry data of {dlen} bytes")
                    got.append(Entry(e_term, e_index, kind, buf[pos:pos + dlen] if dlen else b""))
                    pos += dlen
                entries = tuple(got)
            if flags & CONTEXT:
                (clen,) = u32(buf, pos)
                pos += 4
                if pos + clen > end:
                    raise CodecError(f"truncated raft frame: context of {clen} bytes")
                context = buf[pos:pos + clen]
                pos += clen
            if flags & IDS:
                (ids, pos) = _ids(buf, pos, names)
                from_id, to_id = ids
            if flags & SNAPSHOT:
                s_index, s_term = _SNAP_HEAD.unpack_from(buf, pos)
                voters, pos = _names(buf, pos + _SNAP_HEAD.size, names, "snapshot voters")
                learners, pos = _names(buf, pos, names, "snapshot learners")
                (dlen,) = _U64.unpack_from(buf, pos)
                pos += 8
                if pos + dlen > end:
                    raise CodecError(f"truncated raft frame: snapshot data of {dlen} bytes")
                meta = SnapshotMeta(s_index, s_term, ConfState(voters, learners))
                snapshot = Snapshot(meta, buf[pos:pos + dlen])
                pos += dlen
        out.append(GroupMessage(group, Message(mtype, from_id, to_id, term, log_term, index,
                                               entries, commit, bool(flags & REJECT),
                                               reject_hint, snapshot, context)))
    if pos != end:
        raise CodecError(f"malformed raft frame: {end - pos} bytes after the last message")
    return out


def _ids(buf: bytes, pos: int, names: dict[bytes, str]) -> tuple[tuple[str, str], int]:
    sender, pos = _name_at(buf, pos, names, "from")
    receiver, pos = _name_at(buf, pos, names, "to")
    return (sender, receiver), pos


def decode_frame(frame: bytes, from_node: str, to_node: str,
                 names: dict[bytes, str] | None = None) -> list[GroupMessage[Message]]:
    """The messages of a frame that `from_node` sent to `to_node`; CodecError if malformed."""
    try:
        return _decode(bytes(frame), from_node, to_node, names if names is not None else {})
    except CodecError:
        raise
    except struct.error as exc:  # a fixed-size field past the end
        raise CodecError(f"truncated raft frame: {exc}") from None
    except (IndexError, ValueError, TypeError) as exc:  # belt and braces
        raise CodecError(f"malformed raft frame: {exc!r}") from None


class RaftCodec:
    """BatchCodec for node/raft_transport.py carrying the core's Message."""

    def __init__(self) -> None:
        self._encoder = _Encoder()
        self._names: dict[bytes, str] = {}

    def add(self, parts: list[bytes], message: GroupMessage[Message], from_node: str,
            to_node: str) -> int:
        """Append the parts of one message to `parts`; return their size in bytes."""
        return self._encoder.add(parts, message, from_node, to_node)

    def frame(self, parts: list[bytes], count: int) -> bytes:
        """The frame of `count` messages added to `parts`, whose first element is a placeholder
        for the frame header (so the join is the only copy)."""
        parts[0] = _FRAME_HEAD.pack(FRAME_VERSION, count)
        return b"".join(parts)

    def decode(self, frame: bytes, from_node: str, to_node: str) -> list[GroupMessage[Message]]:
        return decode_frame(frame, from_node, to_node, self._names)


assert tuple(f.name for f in fields(Message)) == MESSAGE_FIELDS, (
    "replication.raft.messages.Message changed: teach node/raft_codec.py the new field")
