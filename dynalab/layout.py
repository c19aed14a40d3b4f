"""Where items live in a storage node's ordered key space, and the key ranges reads scan.

One storage key per item:  table id (8 bytes) | ring token of the partition key (8 bytes, big
endian) | `keys.encode_key(hash, range)`.

Putting the token right after the table id makes every partition's share of a table one
contiguous range (a partition is a ring range), so a partition snapshot, a Scan of a partition
and a later split are range operations; the partition key's own bytes after the token keep one
partition key's items together and sorted by range key for Query. The node stores by these keys
and the router computes its scan bounds with the same functions: one definition for both.

Ranges are half-open [low, high) byte ranges; `None` as high means "to the end of the table".
"""
from __future__ import annotations

from dataclasses import dataclass

from dynalab import keys
from dynalab.expressions import KeyCondition
from dynalab.values import Item, KeySchema

__all__ = ["KeyRange", "TABLE_ID_BYTES", "table_prefix", "item_key", "item_token", "decode_item_key",
           "token_ranges", "query_range"]

TABLE_ID_BYTES = 8
_TOKEN_BYTES = 8
_MAX_TOKEN = (1 << 64) - 1


@dataclass(frozen=True)
class KeyRange:
    low: bytes
    high: bytes  # exclusive

    def __contains__(self, key: bytes) -> bool:
        return self.low <= key < self.high


def table_prefix(table_id: str) -> bytes:
    """Table ids are 16 hex digits (assigned by the metadata group at CreateTable)."""
    raw = bytes.fromhex(table_id)
    if len(raw) != TABLE_ID_BYTES:
        raise ValueError(f"table id must be {TABLE_ID_BYTES * 2} hex digits: {table_id!r}")
    return raw


def item_token(key: Item, schema: KeySchema) -> int:
    return keys.partition_token(key[schema.hash_name])


def item_key(table_id: str, key: Item, schema: KeySchema) -> bytes:
    hash_value = key[schema.hash_name]
    range_value = key[schema.range_name] if schema.range_name is not None else None
    token = keys.partition_token(hash_value)
    return (table_prefix(table_id) + token.to_bytes(_TOKEN_BYTES, "big")
            + keys.encode_key(hash_value, range_value))


def decode_item_key(data: bytes, schema: KeySchema) -> Item:
    """The key attributes of the item stored under `data`."""
    hash_value, range_value = keys.decode_key(data[TABLE_ID_BYTES + _TOKEN_BYTES:],
                                              schema.hash_type, schema.range_type)
    key: Item = {schema.hash_name: hash_value}
    if schema.range_name is not None and range_value is not None:
        key[schema.range_name] = range_value
    return key


def token_ranges(table_id: str, start_token: int, end_token: int) -> list[KeyRange]:
    """The key ranges of a table's items whose token is in the ring range (start, end].
    A range that wraps past the top of the ring gives two key ranges."""
    prefix = table_prefix(table_id)
    if start_token < end_token:
        return [_tokens(prefix, start_token + 1, end_token)]
    ranges = [_tokens(prefix, 0, end_token)]
    if start_token < _MAX_TOKEN:
        ranges.append(_tokens(prefix, start_token + 1, _MAX_TOKEN))
    return ranges


def query_range(table_id: str, condition: KeyCondition, schema: KeySchema) -> KeyRange:
    """The key range holding exactly the items a Query's key condition selects."""
    token = keys.partition_token(condition.hash_value)
    base = (table_prefix(table_id) + token.to_bytes(_TOKEN_BYTES, "big")
            + keys.hash_prefix(condition.hash_value))
    whole = KeyRange(base, _successor(base))
    if condition.op is None:
        return whole
    bounds = [base + keys.encode_key_value(v) for v in condition.values]
    return _range_for(condition.op, bounds, whole)


def _range_for(op: str, bounds: list[bytes], whole: KeyRange) -> KeyRange:
    # b"\x00" appended gives the smallest key greater than a full key: keys are compared
    # bytewise and no stored key lies strictly between K and K + b"\x00".
    first = bounds[0]
    if op == "EQ":
        return KeyRange(first, first + b"\x00")
    if op == "LT":
        return KeyRange(whole.low, first)
    if op == "LE":
        return KeyRange(whole.low, first + b"\x00")
    if op == "GT":
        return KeyRange(first + b"\x00", whole.high)
    if op == "GE":
        return KeyRange(first, whole.high)
    if op == "BETWEEN":
        return KeyRange(first, bounds[1] + b"\x00")
    if op == "BEGINS_WITH":
        # S and B range values are stored unescaped and last, so a value prefix is a key prefix.
        return KeyRange(first, _successor(first))
    raise ValueError(f"unknown key condition operator {op!r}")


def _tokens(prefix: bytes, first_token: int, last_token: int) -> KeyRange:
    low = prefix + first_token.to_bytes(_TOKEN_BYTES, "big")
    if last_token == _MAX_TOKEN:
        return KeyRange(low, _successor(prefix))
    return KeyRange(low, prefix + (last_token + 1).to_bytes(_TOKEN_BYTES, "big"))


def _successor(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string that starts with `prefix`."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        raise ValueError("no successor for a prefix of 0xFF bytes")
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
