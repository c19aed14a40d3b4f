"""An in-process stand-in for a region's storage nodes, behind the router's `StorageTransport`.

It implements the docs/cluster.md operations over dicts with the real pure core
(`dynalab.writes.apply`, `dynalab.layout`), so the router's logic can be tested without
processes. All replicas of a group share one store (replication is not what is under test); what
it does model is *who* may answer: writes, consistent reads and Meta only on the group's leader
(others answer NotLeader with a hint), and faults switched on per node or partition. It also
checks that every key a router sends lies in the partition it was sent to.

Not a node implementation: the lead's end-to-end tests run the router against real nodes.
"""
from __future__ import annotations

import asyncio
import bisect
import hashlib
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from collections import Counter
from typing import Any, Callable

import orjson

from dynalab import writes
from dynalab.errors import (ConditionalCheckFailedException, DynalabError, ResourceInUseException,
                            ResourceNotFoundException)
from dynalab.layout import TABLE_ID_BYTES, item_key
from dynalab.ring import Partition, PartitionMap, RingSnapshot
from dynalab.topology import Topology
from dynalab.values import Item, item_size
from router.nodes import NOT_LEADER, TIMEOUT, UNAVAILABLE, Reply, StorageRequest
from dynalab.ring import META_GROUP, meta_voters

_LEADER_ONLY = ("Write", "BatchWrite", "DropTable", "Meta")


@dataclass
class Call:
    node: str
    operation: str
    partition: str
    body: dict[str, Any]


@dataclass
class FakeCluster:
    topology: Topology
    region: str
    calls: list[Call] = field(default_factory=list)
    down_nodes: set[str] = field(default_factory=set)           # transport-level Unavailable
    unavailable_groups: set[str] = field(default_factory=set)   # node-level Unavailable
    not_leader_once: set[str] = field(default_factory=set)      # next call answers NotLeader
    held_now: Counter[str] = field(default_factory=Counter)  # operation -> requests held now

    def __post_init__(self) -> None:
        self.pmap = PartitionMap.build(RingSnapshot.for_region(self.topology, self.region),
                                       self.topology)
        self.groups: dict[str, Partition] = {p.id: p for p in self.pmap.partitions}
        voters = meta_voters(self.topology, self.region)
        self.groups[META_GROUP] = Partition(META_GROUP, 0, 0, voters)
        self.leaders = {gid: group.replicas[0] for gid, group in self.groups.items()}
        self.stores: dict[str, dict[bytes, Item]] = {p.id: {} for p in self.pmap.partitions}
        self.catalog: dict[str, dict[str, Any]] = {}
        self.epoch = 0

    # ------------------------------------------------------------------ the transport interface

    async def execute(self, node_id: str, request: StorageRequest, timeout_ms: int) -> Reply:
        body = orjson.loads(request.body)
        self.calls.append(Call(node_id, request.operation, request.partition, body))
        group = self.groups[request.partition]
        assert node_id in group.replicas, f"{request.operation} for {group.id} sent to {node_id}"
        if node_id in self.down_nodes:
            return Reply(error_type=UNAVAILABLE, error_message=f"cannot connect to {node_id}")
        if group.id in self.unavailable_groups:
            return Reply(error_type=UNAVAILABLE, error_message="no leader")
        leader = self.leaders[group.id]
        needs_leader = request.operation in _LEADER_ONLY or body.get("consistent")
        if needs_leader and group.id in self.not_leader_once:
            self.not_leader_once.discard(group.id)
            other = next(n for n in group.replicas if n != node_id)
            self.leaders[group.id] = other
            return Reply(error_type=NOT_LEADER, leader_hint=other)
        if needs_leader and node_id != leader:
            return Reply(error_type=NOT_LEADER, leader_hint=leader)
        ready = self._held_until(request.operation, group, body)
        if ready is not None:
            held = await self._hold(node_id, request.operation, group, body, timeout_ms,
                                    ready)
            if held is not None:
                return held
        try:
            answer = getattr(self, "_" + request.operation.lower())(group, body)
        except ConditionalCheckFailedException as exc:
            item = {"Item": exc.item} if exc.item is not None else {}
            return Reply(orjson.dumps(item), type(exc).__name__, exc.message)
        except DynalabError as exc:
            return Reply(error_type=type(exc).__name__, error_message=exc.message)
        return Reply(orjson.dumps(answer))

    async def close(self) -> None:
        return None

    # -------------------------------------------------------------------------- data operations

    def _write(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        write = writes.decode(orjson.dumps(body["write"]))
        key = self._key_in(group, item_key(body["table"], write.key, write.schema))
        outcome = writes.apply(write, self.stores[group.id].get(key))
        self._store(group, key, outcome.item)
        return {"Attributes": outcome.attributes} if outcome.attributes else {}

    def _batchwrite(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        decoded = [(entry["table"], writes.decode(orjson.dumps(entry["write"])))
                   for entry in body["writes"]]
        for table_id, write in decoded:
            key = self._key_in(group, item_key(table_id, write.key, write.schema))
            self._store(group, key, writes.apply(write, self.stores[group.id].get(key)).item)
        return {}

    def _droptable(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        prefix = bytes.fromhex(body["table"])
        store = self.stores[group.id]
        for key in [k for k in store if k[:TABLE_ID_BYTES] == prefix]:
            del store[key]
        return {}

    def _get(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        key = self._key_in(group, b64decode(body["key"]))
        return {"Item": self.stores[group.id].get(key)}

    def _range(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        low, high = b64decode(body["low"]), b64decode(body["high"])
        store = self.stores[group.id]
        keys = sorted(store)
        chosen = keys[bisect.bisect_left(keys, low):bisect.bisect_left(keys, high)]
        if body["reverse"]:
            chosen.reverse()
        items: list[list[Any]] = []
        size = 0
        for key in chosen:
            if len(items) >= body["limit"] or size >= body["max_bytes"]:
                break
            items.append([b64encode(key).decode(), store[key]])
            size += item_size(store[key])
        return {"Items": items, "more": len(items) < len(chosen), "bytes": size}

    def _store(self, group: Partition, key: bytes, item: Item | None) -> None:
        if item is None:
            self.stores[group.id].pop(key, None)
        else:
            self.stores[group.id][key] = item

    def _key_in(self, group: Partition, key: bytes) -> bytes:
        token = int.from_bytes(key[TABLE_ID_BYTES:TABLE_ID_BYTES + 8], "big")
        assert group.contains(token), f"key with token {token:x} sent to partition {group.id}"
        return key

    # ------------------------------------------------------------------------------- metadata

    def _held_until(self, operation: str, group: Partition,
                    body: dict[str, Any]) -> Callable[[], bool] | None:
        """For a request the leader holds (a long poll): what ends the hold early; None for
        one answered at once. Here: a Catalog watch, until the epoch passes after_epoch."""
        if operation == "Meta" and "after_epoch" in body:
            return lambda: self.epoch > body["after_epoch"]
        return None

    async def _hold(self, node_id: str, operation: str, group: Partition, body: dict[str, Any],
                    timeout_ms: int, ready: Callable[[], bool]) -> Reply | None:
        """Hold a request as node/service.py does: until `ready()`, wait_ms passes or
        leadership moves (NotLeader); None: answer it. The fake's state is plain fields that
        tests change directly, so it is looked at every 10 ms. An attempt timeout shorter than
        the wait is the transport's TIMEOUT, as over gRPC."""
        loop = asyncio.get_running_loop()
        hold_ms = min(int(body.get("wait_ms", 0)), timeout_ms)
        end = loop.time() + hold_ms / 1000
        self.held_now[operation] += 1
        try:
            while not ready() and loop.time() < end:
                if self.leaders[group.id] != node_id:
                    return Reply(error_type=NOT_LEADER, leader_hint=self.leaders[group.id])
                await asyncio.sleep(0.01)
        finally:
            self.held_now[operation] -= 1
        if not ready() and timeout_ms < int(body.get("wait_ms", 0)):
            return Reply(error_type=TIMEOUT, error_message=f"no answer in {timeout_ms} ms")
        return None

    def _meta(self, group: Partition, body: dict[str, Any]) -> dict[str, Any]:
        op = body["op"]
        if op == "Catalog":
            return {"epoch": self.epoch, "tables": dict(self.catalog)}
        self.epoch += 1
        if op == "CreateTable":
            spec = body["table"]
            if spec["name"] in self.catalog:
                raise ResourceInUseException(f"Table already exists: {spec['name']}")
            table_id = hashlib.blake2b(f"{spec['name']}\x00{self.epoch}".encode(),
                                       digest_size=8).hexdigest()
            entry = {**spec, "id": table_id, "status": "CREATING"}
            self.catalog[spec["name"]] = entry
            return {"table": entry, "epoch": self.epoch}
        entry = self.catalog.get(body["name"])
        if entry is None or body.get("id", entry["id"]) != entry["id"]:
            raise ResourceNotFoundException(
                f"Requested resource not found: Table: {body['name']} not found")
        if op == "DeleteTable":
            entry["status"] = "DELETING"
        elif op == "UpdateTable":  # as node/meta.py: top-level fields, settings merged
            for name, value in body.items():
                if name == "settings":
                    entry["settings"] = {**entry.get("settings", {}), **value}
                elif name not in ("op", "name", "id"):
                    entry[name] = value
        elif op == "SetStatus":
            if body["status"] == "DELETED":
                del self.catalog[body["name"]]
                return {"epoch": self.epoch}
            entry["status"] = body["status"]
        return {"table": dict(entry), "epoch": self.epoch}

    # --------------------------------------------------------------------------- for the tests

    def items_of(self, table_name: str) -> list[Item]:
        """Every stored item of a table, in storage-key order."""
        table_id = self.catalog[table_name]["id"]
        prefix = bytes.fromhex(table_id)
        found = [(k, v) for store in self.stores.values() for k, v in store.items()
                 if k[:TABLE_ID_BYTES] == prefix]
        return [v for _, v in sorted(found, key=lambda kv: kv[0])]

    def calls_of(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]
