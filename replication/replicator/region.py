"""The replicator's side of its own region: the catalog and calls to partition groups.

It reuses the router's node client (`router.nodes`: one multiplexed stream per node, batched)
and its leader-following retries (`router.routing`) and catalog cache (`router.catalog`), so the
replicator talks to nodes exactly as routers do. The transport is injected: tests put an
in-process region behind it.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, AsyncIterator, Sequence

from dynalab import layout
from dynalab.ring import Partition, PartitionMap
from dynalab.topology import Topology
from router.catalog import Catalog, TableInfo, WatchConfig
from router.nodes import GrpcTransport, StorageTransport
from router.routing import RetryConfig, Routing

__all__ = ["MAX_APPLY", "LocalRegion", "StreamPage", "StoredItem", "global_destinations", "REPLICA_PREFIX",
           "SOURCE_PREFIX", "replica_status", "backfill_source"]

REPLICA_PREFIX = "replica:"          # settings["replica:REGION"] = "CREATING" | "ACTIVE"
SOURCE_PREFIX = "replica_source:"    # settings["replica_source:REGION"] = region that backfills
MAX_APPLY = 2000  # changes per ReplicaApply proposal (a node takes up to 10,000)


def replica_status(table: TableInfo, region: str) -> str:
    """A replica's status; a replica listed without one is ACTIVE (nothing to wait for)."""
    return str(table.settings.get(REPLICA_PREFIX + region) or "ACTIVE")


def backfill_source(table: TableInfo, region: str) -> str | None:
    source = table.settings.get(SOURCE_PREFIX + region)
    return str(source) if source else None


def global_destinations(table: TableInfo, own: str, known: Sequence[str]) -> tuple[str, ...]:
    """The regions a table's own-origin changes go to: its other replicas the topology has."""
    return tuple(r for r in table.replicas if r != own and r in known)


@dataclass(frozen=True)
class StreamPage:
    records: list[dict[str, Any]]
    latest: str | None
    trim_horizon: str | None


@dataclass(frozen=True)
class StoredItem:
    key: bytes
    item: dict[str, Any]
    meta: dict[str, Any] | None


class LocalRegion:
    def __init__(self, topology: Topology, region: str,
                 transport: StorageTransport | None = None,
                 catalog_watch: WatchConfig | None = None,
                 retry: RetryConfig | None = None) -> None:
        spec = topology.region(region)
        transport = transport or GrpcTransport({n.id: f"{n.host}:{n.grpc_port}"
                                                for n in spec.nodes})
        # The replicator belongs to no AZ; eventually consistent reads are not used, so any will do.
        self.routing = Routing(transport, topology, region, spec.azs[0].name,
                               retry or RetryConfig(deadline_ms=8000))
        self.catalog = Catalog(self.routing, catalog_watch)
        self.name = region
        self._partitions = {p.id: p for p in self.routing.pmap.partitions}

    @property
    def pmap(self) -> PartitionMap:
        return self.routing.pmap

    def shards(self) -> tuple[Partition, ...]:
        return self.routing.pmap.partitions

    async def close(self) -> None:
        await self.routing.transport.close()

    async def stream_read(self, table_id: str, shard: Partition, after: str | None,
                          limit: int, wait_ms: int = 0, margin_ms: int = 0) -> StreamPage:
        """A page of the shard's records after `after`. With `wait_ms`, the leader holds an
        empty page until a record comes (a long poll); the call then allows `wait_ms` +
        `margin_ms` for its deadline and its one attempt, so a held read is not taken for a
        lost one."""
        body: dict[str, Any] = {"table": table_id, "after": after, "limit": limit}
        hold_ms = None  # None: routing's usual deadline and attempt timeout
        if wait_ms:
            body["wait_ms"] = wait_ms
            hold_ms = wait_ms + margin_ms
        answer = await self.routing.call_leader(shard, "StreamRead", body, idempotent=True,
                                                held_ms=hold_ms)
        return StreamPage(list(answer.get("records") or []), answer.get("latest"),
                          answer.get("trim_horizon"))

    async def replica_apply(self, table: TableInfo, partition_id: str,
                            changes: list[dict[str, Any]]) -> tuple[int, int]:
        """Apply changes to one partition (LWW on the node), at most `MAX_APPLY` per proposal;
        (applied, skipped)."""
        partition = self._partitions[partition_id]
        applied = skipped = 0
        for start in range(0, len(changes), MAX_APPLY):
            # Idempotent: a repeated change is never greater than what it already stored.
            answer = await self.routing.call_leader(partition, "ReplicaApply", {
                "table": table.id, "key_schema": list(table.key_schema),
                "changes": changes[start:start + MAX_APPLY]}, idempotent=True)
            applied += int(answer.get("applied", 0))
            skipped += int(answer.get("skipped", 0))
        return applied, skipped

    async def scan_pages(self, table_id: str, shard: Partition, page_bytes: int = 1 << 20,
                         max_pages: int = 1_000_000) -> AsyncIterator[list[StoredItem]]:
        """The shard's items of a table with their (ts, origin), page by page
        (consistent reads on the leader)."""
        for key_range in layout.token_ranges(table_id, shard.start, shard.end):
            low = key_range.low
            for _ in range(max_pages):
                answer = await self.routing.call_leader(shard, "Range", {
                    "table": table_id, "low": _b64(low), "high": _b64(key_range.high),
                    "reverse": False, "max_bytes": page_bytes, "consistent": True,
                    "with_meta": True}, idempotent=True)
                page = [_stored(raw) for raw in answer.get("Items") or []]
                if page:
                    yield page
                    low = page[-1].key + b"\x00"  # the smallest key after the last one
                if not answer.get("more") or not page:
                    break

    async def set_replica_status(self, table: TableInfo, region: str, status: str) -> None:
        answer = await self.routing.meta({"op": "UpdateTable", "name": table.name, "id": table.id,
                                          "settings": {REPLICA_PREFIX + region: status}})
        self.catalog.install_entry(answer)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _stored(raw: Sequence[Any]) -> StoredItem:
    meta = raw[2] if len(raw) > 2 else None
    return StoredItem(base64.b64decode(raw[0]), raw[1], meta)
