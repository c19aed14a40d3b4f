"""Change records of one node: their keys and sequence numbers, reading a shard, trimming.

docs/cluster.md, "Streams and global tables". A shard is (table, partition group); its records
live in the `streams` column family under `table id | group | 0x00 | seq (u64 BE)`, so one shard
is one contiguous key range in seq order. `seq = log index * POSITIONS + position`: the records
an entry makes (a BatchWrite or ReplicaApply changes several items) get positions 0, 1, ... The
key with seq 0 (no entry has index 0) holds the shard's trim mark: the highest seq trimmed away.

Records are written by the item state machine (node/items.py) in the WriteBatch of the item
change. Reading and trimming happen here; trimming is local to each replica (by its own clock),
which is safe because it only ever removes a prefix of the shard and remembers where it stopped.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from dynalab import layout
from dynalab.errors import TrimmedDataAccessException, ValidationException
from dynalab.hlc import Version
from dynalab.layout import KeyRange
from dynalab.values import Item
from node.statedb import STREAMS_CF, StateDB

__all__ = ["POSITIONS", "SEQ_DIGITS", "DEFAULT_RETENTION_S", "RETENTION_ENV", "StreamPage",
           "StreamStore", "seq_number", "format_seq", "parse_seq", "record_key", "shard_range",
           "encode_record", "retention_s"]

POSITIONS = 100_000  # records one log entry may make (ReplicaApply is capped well below)
SEQ_DIGITS = 21  # DynamoDB's sequence numbers are at least 21 digits
DEFAULT_RETENTION_S = 24 * 3600
RETENTION_ENV = "DYNALAB_STREAM_RETENTION_S"
MAX_READ_RECORDS = 10_000
_TRIM_MARK = 0
_MAX_SEQ = (1 << 64) - 1
_U64 = struct.Struct(">Q")
_SEPARATOR = b"\x00"  # group ids never contain it, so one shard's prefix is no other's


def seq_number(index: int, position: int) -> int:
    if not 0 <= position < POSITIONS:
        raise ValidationException(f"one entry may make at most {POSITIONS} change records")
    return index * POSITIONS + position


def format_seq(seq: int) -> str:
    return f"{seq:0{SEQ_DIGITS}d}"


def parse_seq(text: object) -> int:
    """A wire seq (a string of digits) as a number; ValidationException for anything else."""
    if not isinstance(text, str) or not text.isdigit() or not text.isascii() or len(text) > 40:
        raise ValidationException(f"a sequence number is a string of digits, not {text!r}")
    return int(text)


def _prefix(table: str, group: str) -> bytes:
    return layout.table_prefix(table) + group.encode() + _SEPARATOR


def record_key(table: str, group: str, seq: int) -> bytes:
    return _prefix(table, group) + _U64.pack(seq)


def shard_range(table: str, group: str) -> KeyRange:
    """Every key of the shard, its trim mark included."""
    prefix = _prefix(table, group)
    return KeyRange(prefix, prefix[:-1] + b"\x01")


def shard_of(key: bytes) -> tuple[str, str]:
    """(table id, group) of a `streams` key."""
    table = key[:layout.TABLE_ID_BYTES].hex()
    group = key[layout.TABLE_ID_BYTES:-(_U64.size + len(_SEPARATOR))].decode()
    return table, group


def encode_record(seq: int, keys: Item, old: bytes | None, new: bytes | None, time_ms: int,
                  version: Version) -> bytes:
    """One change record (docs/cluster.md), with both images (the router shapes them per view).
    The images come as the stored JSON bytes: spliced in, not encoded again."""
    event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    head = orjson.dumps({"seq": format_seq(seq), "event": event, "keys": keys,
                         "time_ms": time_ms, "origin": version.region,
                         "ts": version.ts.to_wire()})
    return (head[:-1] + b',"new":' + (new if new is not None else b"null") + b',"old":'
            + (old if old is not None else b"null") + b"}")


def retention_s(environ: Mapping[str, str]) -> float:
    """The retention `DYNALAB_STREAM_RETENTION_S` asks for (default 24 h)."""
    raw = environ.get(RETENTION_ENV)
    if raw is None or not raw.strip():
        return float(DEFAULT_RETENTION_S)
    value = float(raw)
    if not value > 0:
        raise ValueError(f"{RETENTION_ENV} must be a positive number of seconds, not {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class StreamPage:
    """A StreamRead answer: records (JSON bytes each) and the shard's positions."""

    records: tuple[bytes, ...]
    trim_horizon: int | None  # oldest kept seq
    latest: int | None  # newest kept seq
    trimmed: int | None  # highest seq trimmed away

    def encode(self) -> bytes:
        def seq(value: int | None) -> bytes:
            return b"null" if value is None else b'"' + format_seq(value).encode() + b'"'
        return (b'{"records":[' + b",".join(self.records) + b'],"trim_horizon":'
                + seq(self.trim_horizon) + b',"latest":' + seq(self.latest) + b',"trimmed":'
                + seq(self.trimmed) + b"}")


class StreamStore:
    """Reads and trims the shards of one node's `streams` column family."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def read(self, table: str, group: str, after: int | None, limit: int,
             max_bytes: int) -> StreamPage:
        """Records with seq > `after` (None: from the oldest kept), at most `limit`, stopping
        once their JSON reaches `max_bytes` (the crossing record included)."""
        oldest, newest, trimmed = self.positions(table, group)
        if after is not None and trimmed is not None and after < trimmed:
            raise TrimmedDataAccessException("The data you are trying to access has been trimmed")
        records: list[bytes] = []
        size = 0

        def visit(key: bytes, value: bytes) -> bool:
            nonlocal size
            if len(records) >= limit or size >= max_bytes:
                return False
            records.append(value)
            size += len(value)
            return True
        if limit > 0:
            self._db.scan_records(self._records_after(table, group, after), visit)
        return StreamPage(tuple(records), oldest, newest, trimmed)

    def has_records_after(self, table: str, group: str, after: int | None) -> bool:
        """Does the shard hold a record with seq > `after`? One seek: a held StreamRead asks
        this each time its shard gets records."""
        found = False

        def first(key: bytes, value: bytes) -> bool:
            nonlocal found
            found = True
            return False
        self._db.scan_records(self._records_after(table, group, after), first)
        return found

    def positions(self, table: str, group: str) -> tuple[int | None, int | None, int | None]:
        """(oldest kept seq, newest kept seq, highest trimmed seq) of a shard."""
        found: list[int] = []

        def first(key: bytes, value: bytes) -> bool:
            found.append(_U64.unpack(key[-_U64.size:])[0])
            return False
        records = self._records_after(table, group, None)
        self._db.scan_records(records, first)
        self._db.scan_records(records, first, reverse=True)
        mark = self._db.get_record(record_key(table, group, _TRIM_MARK))
        trimmed = _U64.unpack(mark)[0] if mark is not None else None
        if not found:
            return None, None, trimmed
        return found[0], found[1], trimmed

    def tables(self) -> list[str]:
        """Ids of the tables with records (or a trim mark) on this node."""
        return self._db.table_ids(STREAMS_CF)

    def trim(self, group: str, cutoff_ms: int, max_records: int = 10_000) -> int:
        """Remove the group's records with time_ms < `cutoff_ms`, oldest first, stopping at the
        first younger one (so what is left is always a suffix of the shard); returns how many."""
        removed = 0
        for table in self.tables():
            removed += self._trim_shard(table, group, cutoff_ms, max_records - removed)
            if removed >= max_records:
                break
        return removed

    def _trim_shard(self, table: str, group: str, cutoff_ms: int, budget: int) -> int:
        doomed: list[bytes] = []

        def visit(key: bytes, value: bytes) -> bool:
            if len(doomed) >= budget or _time_ms(value) >= cutoff_ms:
                return False
            doomed.append(key)
            return True
        self._db.scan_records(self._records_after(table, group, None), visit)
        if not doomed:
            return 0
        wb = self._db.batch()
        for key in doomed:
            wb.delete(key, self._db.streams_h)
        wb.put(record_key(table, group, _TRIM_MARK), doomed[-1][-_U64.size:], self._db.streams_h)
        self._db.write(wb)
        return len(doomed)

    @staticmethod
    def _records_after(table: str, group: str, after: int | None) -> KeyRange:
        shard = shard_range(table, group)
        first = _TRIM_MARK + 1 if after is None else min(after + 1, _MAX_SEQ)
        return KeyRange(record_key(table, group, first), shard.high)


def _time_ms(value: bytes) -> int:
    record: Any = orjson.loads(value)
    return int(record["time_ms"])
