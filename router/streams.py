"""The DynamoDB Streams API (X-Amz-Target: DynamoDBStreams_20120810.*) on the router's endpoint.

A table's stream is named by the label its catalog entry keeps (`settings["stream_label"]`, an
ISO timestamp set when the stream was enabled): ARN `<table arn>/stream/<label>`. Only the
latest stream of a table is known. One shard per partition (docs/cluster.md): ShardId
`shardId-<stream creation ms, 20 digits>-<partition token, 16 hex>`, no parents (partitions do
not split yet), never closed while the stream is enabled. Sequence numbers are the nodes' seqs
(log index * 100000 + position, 21 digits).

Shard iterators are opaque to clients: base64url of `{"v": 1, "a": arn, "s": shard, "p": after
seq or null, "t": issued ms}`, where `p` null means "the trim horizon, whatever it is when read".
An iterator expires 15 minutes after it was issued; every GetRecords answer carries a fresh one.
GetRecords reads the partition leader with `StreamRead` and shapes each record's images for the
stream's view type here (nodes keep both images).

Messages marked "unverified" are worded in DynamoDB's style without a confirmed source.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson

from dynalab.errors import (DynalabError, ExpiredIteratorException, ResourceNotFoundException,
                            ValidationException)
from dynalab.ring import Partition
from dynalab.values import Item, item_size
from router.catalog import CREATING, TableInfo
from router.params import Checks, field_int, field_str

if TYPE_CHECKING:
    from router.app import Router

__all__ = ["STREAMS_OPERATIONS", "ShardIterator", "write_flags", "stream_arn", "shard_id",
           "ITERATOR_TTL_MS", "MAX_RECORDS"]

ITERATOR_TTL_MS = 15 * 60 * 1000
MAX_RECORDS = 1000
MAX_SHARDS = 100
MAX_STREAMS = 100
SEQ_DIGITS = 21
_ITERATOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER",
                   "AT_TIMESTAMP")
_WITH_NEW = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
_WITH_OLD = ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
_LABEL_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
_INVALID_ITERATOR = "Invalid ShardIterator"  # unverified


def write_flags(table: TableInfo) -> dict[str, Any]:
    """What a Write/BatchWrite body carries for the node's bookkeeping (docs/cluster.md)."""
    view = table.stream.get("StreamViewType") if table.stream_enabled and table.stream else None
    return {"stream": view, "global": bool(table.replicas)}


# ----------------------------------------------------------------------------- names

def stream_arn(router: Router, table: TableInfo) -> str | None:
    label = table.settings.get("stream_label")
    return f"{router.table_arn(table.name)}/stream/{label}" if label else None


def shard_id(label_ms: int, partition: Partition) -> str:
    return f"shardId-{label_ms:020d}-{partition.id.removeprefix('p')}"


def _label_ms(label: str) -> int:
    moment = datetime.strptime(label, _LABEL_FORMAT).replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class _Stream:
    table: TableInfo
    arn: str
    label: str
    view_type: str

    @property
    def created_ms(self) -> int:
        return _label_ms(self.label)

    def shards(self, router: Router) -> dict[str, Partition]:
        """Shard id -> partition, in shard id order."""
        by_id = {shard_id(self.created_ms, p): p for p in router.routing.pmap.partitions}
        return dict(sorted(by_id.items()))


async def _stream(router: Router, arn: str) -> _Stream:
    missing = ResourceNotFoundException(f"Requested resource not found: Stream: {arn} not found")
    prefix = f"{router.table_arn('')}"
    name, marker, label = arn.removeprefix(prefix).partition("/stream/")
    if not arn.startswith(prefix) or not marker or not name:
        raise missing
    table = await router.catalog.lookup(name)
    if table is None or table.settings.get("stream_label") != label:
        raise missing
    view = (table.stream or {}).get("StreamViewType") or table.settings.get("stream_view_type")
    return _Stream(table, arn, label, str(view or "NEW_AND_OLD_IMAGES"))


def _partition(router: Router, stream: _Stream, shard: str) -> Partition:
    partition = stream.shards(router).get(shard)
    if partition is None:  # unverified wording
        raise ResourceNotFoundException(
            f"Requested resource not found: Shard does not exist: {shard}")
    return partition


# ----------------------------------------------------------------------------- iterators

@dataclass(frozen=True)
class ShardIterator:
    """A position in a shard: after seq `after` (None: at the trim horizon)."""

    arn: str
    shard: str
    after: int | None
    issued_ms: int

    def encode(self) -> str:
        raw = orjson.dumps({"v": 1, "a": self.arn, "s": self.shard, "p": self.after,
                            "t": self.issued_ms})
        return base64.urlsafe_b64encode(raw).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> ShardIterator:
        try:
            raw = orjson.loads(base64.urlsafe_b64decode(text.encode("ascii")))
            after = raw["p"]
            if raw["v"] != 1 or not (after is None or (isinstance(after, int) and after >= 0)):
                raise ValueError("bad position")
            return cls(str(raw["a"]), str(raw["s"]), after, int(raw["t"]))
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error,
                orjson.JSONDecodeError):
            raise ValidationException(_INVALID_ITERATOR) from None

    def check_fresh(self, now_ms: int) -> None:
        if now_ms - self.issued_ms > ITERATOR_TTL_MS:
            raise ExpiredIteratorException(  # Kinesis's wording, which DynamoDB Streams shares
                f"Iterator expired. The iterator was created at time {_http_date(self.issued_ms)} "
                f"while right now it is {_http_date(now_ms)} which is further in the future than "
                f"the tolerated delay of {ITERATOR_TTL_MS} milliseconds.")


def _http_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _format_seq(seq: int) -> str:
    return f"{seq:0{SEQ_DIGITS}d}"


def _parse_seq(text: str | None) -> int:
    if text is None or not text.isdigit() or not text.isascii():  # unverified wording
        raise ValidationException(f"Invalid SequenceNumber: {text}")
    return int(text)


async def _read(router: Router, stream: _Stream, partition: Partition, after: int | None,
                limit: int) -> dict[str, Any]:
    body = {"table": stream.table.id, "after": None if after is None else _format_seq(after),
            "limit": limit}
    return await router.routing.call_leader(partition, "StreamRead", body, idempotent=True)


# ----------------------------------------------------------------------------- ListStreams

async def list_streams(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    name = field_str(body, "TableName")
    start = field_str(body, "ExclusiveStartStreamArn")
    limit = field_int(body, "Limit")
    checks = Checks()
    checks.table_name(name, required=False)
    checks.at_least(limit, "limit", 1)
    checks.done()
    try:  # show streams another router just enabled
        await router.catalog.refresh()
    except DynalabError:
        pass  # the cache is at most ~1 s old
    if name is not None and router.catalog.get(name) is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    streams = [{"StreamArn": arn, "TableName": t.name, "StreamLabel": t.settings["stream_label"]}
               for t in router.catalog.tables()
               if (name is None or t.name == name) and (arn := stream_arn(router, t))]
    streams.sort(key=lambda s: s["StreamArn"])
    if start is not None:
        streams = [s for s in streams if s["StreamArn"] > start]
    page = streams[:min(limit or MAX_STREAMS, MAX_STREAMS)]
    out: dict[str, Any] = {"Streams": page}
    if len(streams) > len(page):
        out["LastEvaluatedStreamArn"] = page[-1]["StreamArn"]
    return out


# ----------------------------------------------------------------------------- DescribeStream

async def describe_stream(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    arn = field_str(body, "StreamArn")
    limit = field_int(body, "Limit")
    start = field_str(body, "ExclusiveStartShardId")
    checks = Checks()
    checks.not_null(arn, "streamArn")
    checks.length(arn, "streamArn", 37, 1024)
    checks.at_least(limit, "limit", 1)
    checks.length(start, "exclusiveStartShardId", 28, 65)
    checks.done()
    assert arn is not None
    stream = await _stream(router, arn)
    shards = [(sid, p) for sid, p in stream.shards(router).items() if start is None or sid > start]
    page = shards[:min(limit or MAX_SHARDS, MAX_SHARDS)]
    starts = await asyncio.gather(*(_starting_seq(router, stream, p) for _, p in page))
    table = stream.table
    description: dict[str, Any] = {
        "StreamArn": stream.arn,
        "StreamLabel": stream.label,
        "StreamStatus": _status(table),
        "StreamViewType": stream.view_type,
        "CreationRequestDateTime": stream.created_ms / 1000,
        "TableName": table.name,
        "KeySchema": list(table.key_schema),
        "Shards": [{"ShardId": sid, "SequenceNumberRange": {"StartingSequenceNumber": first}}
                   for (sid, _), first in zip(page, starts)],
    }
    if len(shards) > len(page):
        description["LastEvaluatedShardId"] = page[-1][0]
    return {"StreamDescription": description}


def _status(table: TableInfo) -> str:
    if not table.stream_enabled:
        return "DISABLED"
    return "ENABLING" if table.status == CREATING else "ENABLED"


async def _starting_seq(router: Router, stream: _Stream, partition: Partition) -> str:
    """The first seq a reader can still get from the shard: its oldest kept record, else the
    one past what was trimmed. A shard that cannot answer now shows the very first."""
    try:
        answer = await _read(router, stream, partition, None, 0)
    except DynalabError:
        return _format_seq(1)
    if answer.get("trim_horizon"):
        return str(answer["trim_horizon"])
    trimmed = answer.get("trimmed")
    return _format_seq(int(trimmed) + 1 if trimmed else 1)


# ----------------------------------------------------------------------------- GetShardIterator

async def get_shard_iterator(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    arn = field_str(body, "StreamArn")
    shard = field_str(body, "ShardId")
    kind = field_str(body, "ShardIteratorType")
    sequence = field_str(body, "SequenceNumber")
    checks = Checks()
    checks.not_null(arn, "streamArn")
    checks.length(arn, "streamArn", 37, 1024)
    checks.not_null(shard, "shardId")
    checks.length(shard, "shardId", 28, 65)
    checks.not_null(kind, "shardIteratorType")
    checks.enum(kind, "shardIteratorType", _ITERATOR_TYPES)
    checks.length(sequence, "sequenceNumber", 21, 40)
    checks.done()
    assert arn is not None and shard is not None and kind is not None
    if kind == "AT_TIMESTAMP":  # unverified wording
        raise ValidationException("AT_TIMESTAMP shard iterators are not supported by dynalab")
    if kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER") and sequence is None:
        raise ValidationException(  # unverified wording
            f"Must specify a SequenceNumber for ShardIteratorType {kind}")
    stream = await _stream(router, arn)
    partition = _partition(router, stream, shard)
    after = await _position(router, stream, partition, kind, sequence)
    return {"ShardIterator": ShardIterator(arn, shard, after, _now_ms()).encode()}


async def _position(router: Router, stream: _Stream, partition: Partition, kind: str,
                    sequence: str | None) -> int | None:
    if kind == "TRIM_HORIZON":
        return None
    if kind == "LATEST":
        answer = await _read(router, stream, partition, None, 0)
        return max(int(answer.get("latest") or 0), int(answer.get("trimmed") or 0))
    seq = _parse_seq(sequence)
    after = seq - 1 if kind == "AT_SEQUENCE_NUMBER" else seq
    after = max(after, 0)
    await _read(router, stream, partition, after, 0)  # TrimmedDataAccessException if trimmed
    return after


# ----------------------------------------------------------------------------- GetRecords

async def get_records(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    text = field_str(body, "ShardIterator")
    limit = field_int(body, "Limit")
    checks = Checks()
    checks.not_null(text, "shardIterator")
    checks.length(text, "shardIterator", 1, 2048)
    checks.at_least(limit, "limit", 1)
    checks.at_most(limit, "limit", MAX_RECORDS)
    checks.done()
    assert text is not None
    iterator = ShardIterator.decode(text)
    now_ms = _now_ms()
    iterator.check_fresh(now_ms)
    stream = await _stream(router, iterator.arn)
    partition = _partition(router, stream, iterator.shard)
    answer = await _read(router, stream, partition, iterator.after, limit or MAX_RECORDS)
    raw: list[dict[str, Any]] = answer.get("records") or []
    records = [_shape(router, stream, iterator.shard, r) for r in raw]
    after = int(raw[-1]["seq"]) if raw else iterator.after
    out: dict[str, Any] = {"Records": records}
    if stream.table.stream_enabled or raw:  # a disabled stream's shards end once read out
        out["NextShardIterator"] = ShardIterator(iterator.arn, iterator.shard, after,
                                                 now_ms).encode()
    return out


def _shape(router: Router, stream: _Stream, shard: str, record: dict[str, Any]) -> dict[str, Any]:
    """A node's change record as DynamoDB Streams shows it, images per the view type."""
    keys: Item = record["keys"]
    view = stream.view_type
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(record["time_ms"]) // 1000,  # whole seconds
        "Keys": keys,
        "SequenceNumber": record["seq"],
        "StreamViewType": view,
    }
    size = item_size(keys)
    if view in _WITH_NEW and record.get("new") is not None:
        dynamodb["NewImage"] = record["new"]
        size += item_size(record["new"])
    if view in _WITH_OLD and record.get("old") is not None:
        dynamodb["OldImage"] = record["old"]
        size += item_size(record["old"])
    dynamodb["SizeBytes"] = max(1, size)
    event_id = hashlib.blake2b(f"{stream.table.id}/{shard}/{record['seq']}".encode(),
                               digest_size=16).hexdigest()
    return {"eventID": event_id, "eventName": record["event"], "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": router.region, "dynamodb": dynamodb}


STREAMS_OPERATIONS: dict[str, Callable[[Router, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "ListStreams": list_streams,
    "DescribeStream": describe_stream,
    "GetShardIterator": get_shard_iterator,
    "GetRecords": get_records,
}
