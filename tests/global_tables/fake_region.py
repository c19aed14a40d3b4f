"""An in-process region for replicator tests: the router tests' FakeCluster plus what
docs/cluster.md's "Streams and global tables" adds on nodes — change records (StreamRead), the
hidden (ts, origin) of items and tombstones, LWW ReplicaApply, and Range with_meta — modelled
over dicts with dynalab.hlc. Not a node implementation: the cluster tests run real nodes.
"""
from __future__ import annotations

import time
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any, Callable

from dynalab import layout
from dynalab.errors import Unavailable
from dynalab.hlc import Timestamp, Version, wins, write_timestamp
from dynalab.ring import Partition
from dynalab.values import Item, KeySchema
from tests.router.fake_cluster import FakeCluster

__all__ = ["FakeRegion", "schema_of"]


def schema_of(entry: dict[str, Any]) -> KeySchema:
    types = {d["AttributeName"]: d["AttributeType"] for d in entry["attribute_definitions"]}
    parts = {k["KeyType"]: k["AttributeName"] for k in entry["key_schema"]}
    hash_name, range_name = parts["HASH"], parts.get("RANGE")
    return KeySchema(hash_name, types[hash_name], range_name,
                     types[range_name] if range_name else None)


@dataclass
class FakeRegion(FakeCluster):
    clock_offset_ms: int = 0
    versions: dict[bytes, Version] = field(default_factory=dict)  # items and tombstones
    streams: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    log_index: dict[str, int] = field(default_factory=dict)
    failing_applies: int = 0  # the next n ReplicaApply calls answer Unavailable
    crashing_scans: int = 0  # the next n Range calls raise (a bug: the backfill crashes)
    crashing_stream_reads: int = 0  # the next n StreamRead calls raise (a bug: a reader dies)

    # -- local writes (what a router + leader do for a global table), for the tests

    def put(self, table: str, item: Item) -> Version:
        return self._local(table, layout.item_key(self._id(table), item,
                                                  schema_of(self.catalog[table])), item)

    def delete(self, table: str, key: Item) -> Version:
        return self._local(table, layout.item_key(self._id(table), key,
                                                  schema_of(self.catalog[table])), None, key)

    def get(self, table: str, key: Item) -> Item | None:
        storage_key = layout.item_key(self._id(table), key, schema_of(self.catalog[table]))
        return self.stores[self._group_of(storage_key).id].get(storage_key)

    def shard_of(self, table: str, key: Item) -> Partition:
        return self._group_of(layout.item_key(self._id(table), key,
                                              schema_of(self.catalog[table])))

    def version(self, table: str, key: Item) -> Version | None:
        return self.versions.get(layout.item_key(self._id(table), key,
                                                 schema_of(self.catalog[table])))

    def forget_version(self, table: str, key: Item) -> None:
        """As if the item had been written before the table was global (no bookkeeping)."""
        del self.versions[layout.item_key(self._id(table), key, schema_of(self.catalog[table]))]

    def contents(self, table: str) -> dict[str, Item]:
        """Hash key string -> item, for comparing regions."""
        schema = schema_of(self.catalog[table])
        return {str(next(iter(i[schema.hash_name].values()))): i for i in self.items_of(table)}

    def _local(self, table: str, key: bytes, item: Item | None, keys: Item | None = None) -> Version:
        stored = self.versions.get(key)
        now_ms = int(time.time() * 1000) + self.clock_offset_ms
        version = Version(write_timestamp(now_ms, stored.ts if stored else None), self.region)
        schema = schema_of(self.catalog[table])
        self._change(self._group_of(key), self._id(table), key, item, version,
                     keys or {n: item[n] for n, _, _ in schema.parts()} if item else keys)
        return version

    # -- node operations

    def _held_until(self, operation: str, group: Partition,
                    body: dict[str, Any]) -> Callable[[], bool] | None:
        """A StreamRead with wait_ms is held until the shard has a record after `after`."""
        if operation == "StreamRead" and body.get("wait_ms"):
            return lambda: bool(self._fresh(group, body))
        return super()._held_until(operation, group, body)

    def _streamread(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        if self.crashing_stream_reads:
            self.crashing_stream_reads -= 1
            raise RuntimeError("a bug in reading a stream")
        records = self.streams.get((body["table"], group.id), [])
        fresh = self._fresh(group, body)
        return {"records": fresh[:body.get("limit") or 1000],
                "trim_horizon": records[0]["seq"] if records else None,
                "latest": records[-1]["seq"] if records else None}

    def _replicaapply(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        if self.failing_applies:
            self.failing_applies -= 1
            raise Unavailable("no leader yet")
        table_id = body["table"]
        schema = next(schema_of(e) for e in self.catalog.values() if e["id"] == table_id)
        entry = next(e for e in self.catalog.values() if e["id"] == table_id)
        assert body["key_schema"] == entry["key_schema"]  # the node needs it (docs/cluster.md)
        assert 0 < len(body["changes"]) <= 10_000
        applied = skipped = 0
        for change in body["changes"]:
            key = self._key_in(group, layout.item_key(table_id, change["keys"], schema))
            version = Version(Timestamp.from_wire(change["ts"]), change["origin"])
            if wins(version, self.versions.get(key)):
                self._change(group, table_id, key, change["item"], version, change["keys"])
                applied += 1
            else:
                skipped += 1
        return {"applied": applied, "skipped": skipped}

    def _range(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        if self.crashing_scans:
            self.crashing_scans -= 1
            raise RuntimeError("a bug in scanning")
        answer = super()._range(group, {"limit": 10**9, "max_bytes": 1 << 20, **body})
        if body.get("with_meta"):
            from base64 import b64decode
            answer["Items"] = [[k, item, self._hidden(b64decode(k))] for k, item in answer["Items"]]
        return answer

    # -- helpers

    def _fresh(self, group: Partition, body: dict[str, Any]) -> list[dict[str, Any]]:
        after = body.get("after")
        records = self.streams.get((body["table"], group.id), [])
        return [r for r in records if after is None or r["seq"] > after]

    def _hidden(self, key: bytes) -> dict[str, Any] | None:
        version = self.versions.get(key)
        return version.to_wire() if version else None

    def _change(self, group: Partition, table_id: str, key: bytes, item: Item | None,
                version: Version, keys: Item) -> None:
        old = self.stores[group.id].get(key)
        self._store(group, key, item)
        self.versions[key] = version
        index = self.log_index[group.id] = self.log_index.get(group.id, 0) + 1
        event = "REMOVE" if item is None else ("MODIFY" if old else "INSERT")
        self.streams.setdefault((table_id, group.id), []).append({
            "seq": f"{index:021d}", "event": event, "keys": keys, "new": item, "old": old,
            "time_ms": int(time.time() * 1000), "origin": version.region,
            "ts": version.ts.to_wire()})

    def _id(self, table: str) -> str:
        return str(self.catalog[table]["id"])

    def _group_of(self, key: bytes) -> Partition:
        token = int.from_bytes(key[layout.TABLE_ID_BYTES:layout.TABLE_ID_BYTES + 8], "big")
        return self.pmap.for_token(token)

    def add_table(self, name: str, replicas: list[str], settings: dict[str, Any] | None = None,
                  hash_type: str = "S") -> str:
        """A table entry as CreateTable + UpdateTable would leave it (ACTIVE)."""
        self.epoch += 1
        table_id = f"{abs(hash((name, self.region, self.epoch))) % (1 << 63):016x}"
        self.catalog[name] = {
            "name": name, "id": table_id, "status": "ACTIVE",
            "key_schema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "attribute_definitions": [{"AttributeName": "pk", "AttributeType": hash_type}],
            "created_ms": 0, "stream": {"StreamEnabled": True,
                                        "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "replicas": replicas, "settings": settings or {}}
        return table_id


def b64(data: bytes) -> str:
    return b64encode(data).decode()
