"""Query and Scan: key ranges, pages, filters and LastEvaluatedKey.

Nodes return items of a key range in key order (`Range`, docs/cluster.md) and stop at a count or
at ~1 MB; everything else is done here. As in DynamoDB, the 1 MB page and `Limit` count items
*read*, before FilterExpression drops any (ScannedCount), and LastEvaluatedKey is the key of the
last item read. A page that stopped at the Limit or at 1 MB always has one, even when nothing
follows (DynamoDB's documented behaviour: the client then reads one more, empty, page).

A Query reads one key range on one partition (the hash key's). A Scan walks the table's key
ranges of every partition in key order (`layout.token_ranges`: the token follows the table id in
storage keys, so key order is token order); a parallel-scan segment is a slice of the token space,
so segments are disjoint and together cover every item exactly once.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dynalab import keys, layout
from dynalab.capacity import read_units
from dynalab.errors import ServerError, ValidationException
from dynalab.expressions import CompiledRequest, compile_request, evaluate, project
from dynalab.layout import KeyRange
from dynalab.ring import RING_SIZE, Partition, PartitionMap
from dynalab.values import Item, validate_key
from router.catalog import TableInfo
from router.items import b64
from router.params import (MAX_PAGE_BYTES, Checks, capacity_mode, consumed, field_bool, field_int,
                           field_str)

if TYPE_CHECKING:
    from router.app import Router

__all__ = ["query", "scan", "scan_pieces"]

_SELECTS = ("ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES", "COUNT")
_NO_LIMIT = 2 ** 31 - 1  # no Limit: the 1 MB page ends it
_MAX_SEGMENTS = 1_000_000


@dataclass(frozen=True)
class _Read:
    """What one Query or Scan page asks for, validated."""

    table: TableInfo
    compiled: CompiledRequest
    select: str
    limit: int | None
    consistent: bool
    capacity: str


@dataclass
class _Page:
    """Items read so far: (storage key, item) in read order."""

    read: list[tuple[bytes, Item]]
    bytes_read: int = 0
    more: bool = False  # the last range read holds further items


# ------------------------------------------------------------------------------------ Query

async def query(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    checks = Checks()
    capacity, limit, select, consistent = _common_params(body, checks)
    forward = field_bool(body, "ScanIndexForward")
    index = field_str(body, "IndexName")
    checks.table_name(index, "indexName", required=False)
    table = await router.active_table(body, checks)
    if index is not None:
        raise ValidationException(f"The table does not have the specified index: {index}")
    compiled = compile_request("Query", body, key_schema=table.schema)
    read = _Read(table, compiled, _select(select, body, querying=True), limit, consistent, capacity)
    condition = compiled.key_condition
    assert condition is not None
    bounds = layout.query_range(table.id, condition, table.schema)
    start = _start_key(body, table)
    if start is not None:
        if start not in bounds:
            raise ValidationException("The provided starting key is outside query boundaries "
                                      "based on provided conditions")
        bounds = (KeyRange(start + b"\x00", bounds.high) if forward is not False
                  else KeyRange(bounds.low, start))
    partition = router.routing.pmap.for_token(keys.partition_token(condition.hash_value))
    page = _Page([])
    await _read_range(router, read, partition, bounds, forward is False, page)
    return _response(read, page, page.more or _page_full(read, page))


# ------------------------------------------------------------------------------------- Scan

async def scan(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    checks = Checks()
    capacity, limit, select, consistent = _common_params(body, checks)
    segment, total = field_int(body, "Segment"), field_int(body, "TotalSegments")
    checks.at_least(segment, "segment", 0)
    checks.at_most(segment, "segment", _MAX_SEGMENTS - 1)
    checks.at_least(total, "totalSegments", 1)
    checks.at_most(total, "totalSegments", _MAX_SEGMENTS)
    if body.get("IndexName") is not None:
        checks.table_name(field_str(body, "IndexName"), "indexName", required=False)
    table = await router.active_table(body, checks)
    _check_segments(segment, total)
    if body.get("IndexName") is not None:
        raise ValidationException(
            f"The table does not have the specified index: {body['IndexName']}")
    compiled = compile_request("Scan", body)
    read = _Read(table, compiled, _select(select, body, querying=False), limit, consistent,
                 capacity)
    pieces = scan_pieces(router.routing.pmap, table.id, segment or 0, total or 1)
    start = _start_key(body, table)
    if start is not None:
        if not any(start in r for r, _ in pieces):  # unverified wording
            raise ValidationException("The provided starting key is invalid: Exclusive start key "
                                      "does not belong to the requested segment")
        pieces = _after(pieces, start + b"\x00")
    page = _Page([])
    for i, (bounds, partition) in enumerate(pieces):
        await _read_range(router, read, partition, bounds, False, page)
        if _page_full(read, page):
            return _response(read, page, True)
    return _response(read, page, False)


def scan_pieces(pmap: PartitionMap, table_id: str, segment: int,
                total: int) -> list[tuple[KeyRange, Partition]]:
    """The key ranges of segment `segment` of `total` of a table, in key order, each with the
    partition that holds it. Segment i is the token slice
    [i * 2^64 / total, (i+1) * 2^64 / total)."""
    pieces = sorted(((r, p) for p in pmap.partitions
                     for r in layout.token_ranges(table_id, p.start, p.end)),
                    key=lambda piece: piece[0].low)
    prefix = layout.table_prefix(table_id)
    table_end = max(r.high for r, _ in pieces)
    first, last = segment * RING_SIZE // total, (segment + 1) * RING_SIZE // total
    low = prefix + first.to_bytes(8, "big")
    high = table_end if last == RING_SIZE else prefix + last.to_bytes(8, "big")
    clipped = [(KeyRange(max(r.low, low), min(r.high, high)), p) for r, p in pieces]
    return [(r, p) for r, p in clipped if r.low < r.high]


def _after(pieces: list[tuple[KeyRange, Partition]],
           low: bytes) -> list[tuple[KeyRange, Partition]]:
    clipped = [(KeyRange(max(r.low, low), r.high), p) for r, p in pieces]
    return [(r, p) for r, p in clipped if r.low < r.high]


def _check_segments(segment: int | None, total: int | None) -> None:
    if segment is not None and total is None:
        raise ValidationException("The TotalSegments parameter is required but was not present in "
                                  "the request when Segment parameter is present")
    if total is not None and segment is None:
        raise ValidationException("The Segment parameter is required but was not present in the "
                                  "request when parameter TotalSegments is present")
    if segment is not None and total is not None and segment >= total:
        raise ValidationException("The Segment parameter is zero-based and must be less than "
                                  f"parameter TotalSegments: Segment: {segment} is not less than "
                                  f"TotalSegments: {total}")


# ----------------------------------------------------------------------------------- shared

def _common_params(body: dict[str, Any],
                   checks: Checks) -> tuple[str, int | None, str | None, bool]:
    capacity = capacity_mode(body, checks)
    limit = field_int(body, "Limit")
    checks.at_least(limit, "limit", 1)
    select = field_str(body, "Select")
    checks.enum(select, "select", _SELECTS)
    consistent = bool(field_bool(body, "ConsistentRead"))
    return capacity, limit, select, consistent


def _select(select: str | None, body: dict[str, Any], querying: bool) -> str:
    """The effective Select, with DynamoDB's rules for combining it with a projection."""
    projected = next((name for name in ("ProjectionExpression", "AttributesToGet")
                      if body.get(name) is not None), None)
    if select is None:
        return "SPECIFIC_ATTRIBUTES" if projected else "ALL_ATTRIBUTES"
    if select == "ALL_PROJECTED_ATTRIBUTES":
        raise ValidationException("ALL_PROJECTED_ATTRIBUTES can be used only when "
                                  f"{'Querying' if querying else 'Scanning'} using an IndexName")
    if select == "ALL_ATTRIBUTES" and projected:
        raise ValidationException(
            f"Cannot specify the {projected} when choosing to get ALL_ATTRIBUTES")
    if select == "COUNT" and projected:
        raise ValidationException(
            f"Cannot specify the {projected} when choosing to get only the Count")
    if select == "SPECIFIC_ATTRIBUTES" and not projected:  # unverified wording
        raise ValidationException("Select type SPECIFIC_ATTRIBUTES requires a ProjectionExpression "
                                  "or AttributesToGet")
    return select


def _start_key(body: dict[str, Any], table: TableInfo) -> bytes | None:
    raw = body.get("ExclusiveStartKey")
    if raw is None:
        return None
    try:
        key = validate_key(raw, table.schema)
    except ValidationException as exc:
        raise ValidationException(f"The provided starting key is invalid: {exc.message}") from None
    return layout.item_key(table.id, key, table.schema)


def _page_full(read: _Read, page: _Page) -> bool:
    return (read.limit is not None and len(page.read) >= read.limit) \
        or page.bytes_read >= MAX_PAGE_BYTES


async def _read_range(router: Router, read: _Read, partition: Partition, bounds: KeyRange,
                      reverse: bool, page: _Page) -> None:
    """Read `bounds` on `partition` into `page`, up to what is left of the Limit and the 1 MB."""
    request = {"table": read.table.id, "low": b64(bounds.low), "high": b64(bounds.high),
               "reverse": reverse,
               "limit": (read.limit - len(page.read)) if read.limit is not None else _NO_LIMIT,
               "max_bytes": MAX_PAGE_BYTES - page.bytes_read, "consistent": read.consistent}
    routing = router.routing
    if read.consistent:
        answer = await routing.call_leader(partition, "Range", request, idempotent=True)
    else:
        answer = await routing.call_replica(partition, "Range", request)
    for raw_key, item in answer.get("Items") or ():
        page.read.append((_unb64(raw_key), item))
    # The node summed the items' sizes for its own max_bytes stop: not again here.
    page.bytes_read += _page_bytes(answer)
    page.more = bool(answer.get("more"))


def _response(read: _Read, page: _Page, more: bool) -> dict[str, Any]:
    compiled = read.compiled
    matched = [item for _, item in page.read
               if compiled.filter is None or evaluate(compiled.filter, item)]
    out: dict[str, Any] = {"Count": len(matched), "ScannedCount": len(page.read)}
    if read.select != "COUNT":
        paths = compiled.projection.paths if compiled.projection is not None else None
        out["Items"] = [project(item, paths) if paths is not None else item for item in matched]
    if more and page.read:
        out["LastEvaluatedKey"] = layout.decode_item_key(page.read[-1][0], read.table.schema)
    entry = consumed(read.capacity, read.table.name,
                     read_units(page.bytes_read, consistent=read.consistent))
    if entry is not None:
        out["ConsumedCapacity"] = entry
    return out


def _page_bytes(answer: dict[str, Any]) -> int:
    size = answer.get("bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ServerError("a storage node sent a Range page without its size")
    return size


def _unb64(text: Any) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ServerError("a storage node sent a malformed key") from None
