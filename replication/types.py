"""Values shared by the Raft core, its log stores and its driver. All immutable."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class EntryKind(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1
    NOOP = 2  # appended by a new leader so it can commit entries of earlier terms


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a replica answers a vote or acknowledges entries."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""


class ConfChangeType(enum.IntEnum):
    """Single-replica membership changes, one at a time; replace = add, then remove."""

    BOOTSTRAP = 0  # the first entry of a new group: `voters` is the initial membership
    ADD_VOTER = 1
    REMOVE_VOTER = 2


@dataclass(frozen=True, slots=True)
class ConfChange:
    """The data of a CONF_CHANGE entry. `voters` is the membership that results, so a replica
    replaying its log (or joining with an empty one) needs no earlier configuration."""

    op: ConfChangeType
    node_id: str
    voters: tuple[str, ...]

    def encode(self) -> bytes:
        # Node ids are plain names; "|" and "," never occur in them (checked here, not assumed).
        names = (self.node_id, *self.voters)
        if any("|" in n or "," in n for n in names):
            raise ValueError(f"node id with '|' or ',': {names}")
        return f"{int(self.op)}|{self.node_id}|{','.join(self.voters)}".encode()

    @staticmethod
    def decode(data: bytes) -> "ConfChange":
        op, node_id, voters = data.decode().split("|")
        return ConfChange(ConfChangeType(int(op)), node_id, tuple(v for v in voters.split(",") if v))
