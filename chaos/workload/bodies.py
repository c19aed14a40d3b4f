"""DynamoDB JSON request bodies, pre-built so the hot path only splices keys into bytes.

Records are numbered 0, 1, 2, ...; record i lives at partition key `user{i // items_per_key}` and
sort key `{i % items_per_key:06d}`, so a Query of one partition key returns up to items_per_key
items (workload E). A table with only a hash key uses partition key `user{i}`.

Every item carries a version number `v` (workload F's conditional read-modify-write checks it) and
a `data` string padded so the whole item is about `item_size_bytes` by DynamoDB's size rule
(attribute names plus values).
"""
from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["KeySchema", "RequestBuilder", "error_type", "version_of", "create_table_body",
           "key_schema_of"]

VERSION_ATTR = "v"
DATA_ATTR = "data"
_PAYLOAD_POOL = 8  # distinct payloads, so a compressing store cannot shrink every item to one
_SLOT = re.compile(rb"@@(\d)@@")
_RAW_SLOT = re.compile(rb'"@@r(\d)@@"')  # a slot for a JSON number: the quotes go away


@dataclass(frozen=True)
class KeySchema:
    """Names of the table's key attributes (both of type S); range_name None for hash-only."""

    hash_name: str = "pk"
    range_name: str | None = "sk"


def key_schema_of(describe_table: dict[str, Any]) -> KeySchema:
    """The KeySchema of a DescribeTable response; ValueError if the keys are not strings."""
    table = describe_table["Table"]
    types = {d["AttributeName"]: d["AttributeType"] for d in table.get("AttributeDefinitions", [])}
    names = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
    for name in names.values():
        if types.get(name, "S") != "S":
            raise ValueError(f"key attribute {name!r} has type {types[name]}; the bench needs S")
    return KeySchema(hash_name=names["HASH"], range_name=names.get("RANGE"))


def create_table_body(table: str, schema: KeySchema) -> bytes:
    keys = [(schema.hash_name, "HASH")]
    if schema.range_name is not None:
        keys.append((schema.range_name, "RANGE"))
    return orjson.dumps({
        "TableName": table,
        "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in keys],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n, _ in keys],
        "BillingMode": "PAY_PER_REQUEST",
    })


class _Template:
    """A JSON document with slots, filled by splicing bytes (keys are [a-z0-9], JSON-safe).

    "@@0@@" inside a string is a slot in that string; the string "@@r0@@" is a raw slot (numbers).
    """

    def __init__(self, document: dict[str, Any]) -> None:
        encoded = _RAW_SLOT.sub(rb"@@\1@@", orjson.dumps(document))
        pieces = _SLOT.split(encoded)
        self._texts = pieces[0::2]
        self._slots = [int(i) for i in pieces[1::2]]

    def fill(self, values: tuple[bytes, ...]) -> bytes:
        out = [self._texts[0]]
        for slot, text in zip(self._slots, self._texts[1:]):
            out.append(values[slot])
            out.append(text)
        return b"".join(out)


def _n(slot: int) -> dict[str, str]:
    return {"N": f"@@{slot}@@"}


def _s(slot: int) -> dict[str, str]:
    return {"S": f"@@{slot}@@"}


class RequestBuilder:
    """Bodies for the bench's requests; slot 0 is the partition key, slot 1 the sort key."""

    def __init__(self, table: str, schema: KeySchema, item_size_bytes: int, items_per_key: int,
                 consistent_read: bool, rng: random.Random) -> None:
        if items_per_key > 1 and schema.range_name is None:
            raise ValueError("several items per partition key need a table with a sort key")
        self.table = table
        self.schema = schema
        self._per_key = items_per_key
        self._pos = 0
        payloads = self._payloads(item_size_bytes, rng)
        key = self._key_doc()
        self._get = _Template({"TableName": table, "Key": key, "ConsistentRead": consistent_read})
        self._puts = [_Template(self._put_doc(key, p)) for p in payloads]
        self._updates = [_Template(self._update_doc(key, p)) for p in payloads]
        self._cond_updates = [_Template(self._cond_update_doc(key, p)) for p in payloads]
        self._creates = [_Template(self._create_doc(key, p)) for p in payloads]
        self._query = _Template(self._query_doc(consistent_read))

    # -- keys ------------------------------------------------------------------------------
    def key_of(self, record: int) -> tuple[str, str | None]:
        if self.schema.range_name is None:
            return f"user{record}", None
        return f"user{record // self._per_key}", f"{record % self._per_key:06d}"

    def _key_bytes(self, record: int) -> tuple[bytes, bytes]:
        pk, sk = self.key_of(record)
        return pk.encode(), (sk or "").encode()

    def _key_doc(self) -> dict[str, Any]:
        key = {self.schema.hash_name: _s(0)}
        if self.schema.range_name is not None:
            key[self.schema.range_name] = _s(1)
        return key

    def _payloads(self, item_size_bytes: int, rng: random.Random) -> list[str]:
        pk, sk = self.key_of(0)
        overhead = len(self.schema.hash_name) + len(pk) + len(VERSION_ATTR) + 2 + len(DATA_ATTR)
        if self.schema.range_name is not None:
            overhead += len(self.schema.range_name) + len(sk or "")
        size = max(1, item_size_bytes - overhead)
        alphabet = string.ascii_letters + string.digits
        return ["".join(rng.choices(alphabet, k=size)) for _ in range(_PAYLOAD_POOL)]

    def _next_payload(self) -> int:
        self._pos = (self._pos + 1) % _PAYLOAD_POOL
        return self._pos

    # -- documents -------------------------------------------------------------------------
    def _put_doc(self, key: dict[str, Any], payload: str) -> dict[str, Any]:
        item = dict(key)
        item[VERSION_ATTR] = {"N": "0"}
        item[DATA_ATTR] = {"S": payload}
        return {"TableName": self.table, "Item": item}

    def _update_doc(self, key: dict[str, Any], payload: str) -> dict[str, Any]:
        # ADD (not SET v = v + 1) also works on an item that does not exist yet.
        return {"TableName": self.table, "Key": key,
                "UpdateExpression": "SET #d = :d ADD #v :one",
                "ExpressionAttributeNames": {"#d": DATA_ATTR, "#v": VERSION_ATTR},
                "ExpressionAttributeValues": {":d": {"S": payload}, ":one": {"N": "1"}}}

    def _cond_update_doc(self, key: dict[str, Any], payload: str) -> dict[str, Any]:
        return {"TableName": self.table, "Key": key,
                "UpdateExpression": "SET #d = :d, #v = :next",
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#d": DATA_ATTR, "#v": VERSION_ATTR},
                "ExpressionAttributeValues": {":d": {"S": payload}, ":next": _n(2),
                                              ":expected": _n(3)}}

    def _create_doc(self, key: dict[str, Any], payload: str) -> dict[str, Any]:
        # Read-modify-write of an item the read did not find: create it, unless someone did.
        return {"TableName": self.table, "Key": key,
                "UpdateExpression": "SET #d = :d, #v = :next",
                "ConditionExpression": "attribute_not_exists(#v)",
                "ExpressionAttributeNames": {"#d": DATA_ATTR, "#v": VERSION_ATTR},
                "ExpressionAttributeValues": {":d": {"S": payload}, ":next": {"N": "1"}}}

    def _query_doc(self, consistent_read: bool) -> dict[str, Any]:
        if self.schema.range_name is None:
            condition, names = "#pk = :pk", {"#pk": self.schema.hash_name}
            values: dict[str, Any] = {":pk": _s(0)}
        else:
            condition = "#pk = :pk AND #sk >= :sk"
            names = {"#pk": self.schema.hash_name, "#sk": self.schema.range_name}
            values = {":pk": _s(0), ":sk": _s(1)}
        return {"TableName": self.table, "KeyConditionExpression": condition,
                "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
                "Limit": "@@r2@@", "ConsistentRead": consistent_read}

    # -- bodies ----------------------------------------------------------------------------
    def get_item(self, record: int) -> bytes:
        return self._get.fill(self._key_bytes(record))

    def put_item(self, record: int) -> bytes:
        return self._puts[self._next_payload()].fill(self._key_bytes(record))

    def update_item(self, record: int) -> bytes:
        return self._updates[self._next_payload()].fill(self._key_bytes(record))

    def conditional_update(self, record: int, expected_version: int | None) -> bytes:
        """SET data and v = expected + 1 if v == expected; create if expected is None."""
        pk, sk = self._key_bytes(record)
        if expected_version is None:
            return self._creates[self._next_payload()].fill((pk, sk))
        template = self._cond_updates[self._next_payload()]
        return template.fill((pk, sk, str(expected_version + 1).encode(),
                              str(expected_version).encode()))

    def query(self, record: int, limit: int) -> bytes:
        """Query the record's partition key from its sort key on, at most `limit` items."""
        pk, sk = self._key_bytes(record)
        return self._query.fill((pk, sk, str(limit).encode()))


def version_of(get_item_response: bytes) -> int | None:
    """The `v` attribute of a GetItem response, None if there is no item (or no version)."""
    item = orjson.loads(get_item_response).get("Item")
    if not item or VERSION_ATTR not in item:
        return None
    return int(item[VERSION_ATTR]["N"])


def error_type(status: int, body: bytes) -> str:
    """The short DynamoDB error name (`__type` after '#'), or HTTP<status> when there is none."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"HTTP{status}"
    kind = doc.get("__type") if isinstance(doc, dict) else None
    if not isinstance(kind, str) or not kind:
        return f"HTTP{status}"
    return kind.rsplit("#", 1)[-1]
