"""Change records -> ReplicaApply changes, and changes -> the partitions they belong to (pure).

A change is exactly what `ReplicaApply` takes (docs/cluster.md): `{"keys", "item" or None, "ts":
[w, l], "origin"}`. It travels between regions as JSON inside a `Batch`; the receiver sorts the
changes of a batch into its own region's partitions, which need not match the sender's (each
region has its own ring).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import orjson

from dynalab import layout
from dynalab.hlc import ZERO
from dynalab.ring import PartitionMap
from dynalab.values import Item, KeySchema, key_of

__all__ = ["Change", "from_record", "from_stored", "by_partition", "encode", "decode",
           "KINDS", "CHANGES", "BACKFILL", "REPLICA_ACTIVE"]

Change = dict[str, Any]
CHANGES, BACKFILL, REPLICA_ACTIVE = "changes", "backfill", "replica_active"
KINDS = (CHANGES, BACKFILL, REPLICA_ACTIVE)


def from_record(record: Mapping[str, Any]) -> Change:
    """The change that replays a stream record elsewhere (REMOVE: item None, a tombstone)."""
    item = None if record["event"] == "REMOVE" else record["new"]
    return {"keys": record["keys"], "item": item, "ts": record["ts"], "origin": record["origin"]}


def from_stored(item: Item, meta: Mapping[str, Any] | None, schema: KeySchema,
                source_region: str) -> Change:
    """The change that copies a stored item (backfill) with its hidden (ts, origin). An item
    written before the table was global has none: it goes as ([0, 0], source region), below
    every real write, so any write made meanwhile in the new region wins over the copy."""
    if meta is None:
        ts, origin = ZERO.to_wire(), source_region
    else:
        ts, origin = list(meta["ts"]), meta["origin"]
    return {"keys": key_of(item, schema), "item": item, "ts": ts, "origin": origin}


def by_partition(changes: Iterable[Change], schema: KeySchema,
                 pmap: PartitionMap) -> dict[str, list[Change]]:
    """Partition id -> its changes, in the order given."""
    groups: dict[str, list[Change]] = {}
    for change in changes:
        partition = pmap.for_token(layout.item_token(change["keys"], schema))
        groups.setdefault(partition.id, []).append(change)
    return groups


def encode(changes: Sequence[Change]) -> bytes:
    return orjson.dumps(list(changes))


def decode(raw: bytes) -> list[Change]:
    if not raw:
        return []
    decoded = orjson.loads(raw)
    if not isinstance(decoded, list) or not all(isinstance(c, dict) and "keys" in c
                                                for c in decoded):
        raise ValueError("a batch's changes must be a JSON list of changes")
    return decoded
