"""A tiny key-value state machine of registers, fed by committed log entries."""
from __future__ import annotations

import json

from replication.types import Entry, EntryKind


def encode_write(op_id: int, key: str, value: int) -> bytes:
    return f"{op_id}|{key}|{value}".encode()


def decode_write(data: bytes) -> tuple[int, str, int]:
    op_id, key, value = data.decode().split("|")
    return int(op_id), key, int(value)


class KvStateMachine:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.applied_ops: set[int] = set()  # write ids, for "every acknowledged write survives"
        self.index = 0

    def apply(self, entry: Entry) -> None:
        self.index = entry.index
        if entry.kind != EntryKind.NORMAL:
            return
        op_id, key, value = decode_write(entry.data)
        self.values[key] = value
        self.applied_ops.add(op_id)

    def snapshot(self) -> bytes:
        return json.dumps([self.index, self.values, sorted(self.applied_ops)]).encode()

    def restore(self, data: bytes) -> None:
        if not data:
            self.__init__()  # type: ignore[misc]
            return
        index, values, ops = json.loads(data)
        self.index, self.values, self.applied_ops = index, dict(values), set(ops)
