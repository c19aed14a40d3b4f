"""Helpers for failover tests: who leads a key's partition, replica digests, and a boto3 writer
pool that records exactly which writes were acknowledged and when."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dynalab import layout
from dynalab.ring import META_GROUP, PartitionMap, RingSnapshot
from dynalab.topology import Topology
from dynalab.values import KeySchema
from tests.cluster_node.harness import StorageClient, get_body
from tests.e2e.cluster import Cluster

SCHEMA = KeySchema("pk", "S", "sk", "N")


def node_addresses(topo: Topology, region: str = "us-east-1") -> dict[str, str]:
    return {n.id: f"{n.host}:{n.grpc_port}" for n in topo.region(region).nodes}


def partition_of(topo: Topology, pk: str, region: str = "us-east-1") -> Any:
    pmap = PartitionMap.build(RingSnapshot.for_region(topo, region), topo)
    return pmap.for_token(layout.item_token({"pk": {"S": pk}}, SCHEMA))


async def _table_id(client: StorageClient, voters: tuple[str, ...], table: str) -> str:
    _, reply = await client.call_leader(META_GROUP, "Meta", {"op": "Catalog"}, replicas=voters)
    return str(reply.json()["tables"][table]["id"])


def leader_of(cluster: Cluster, table: str, pk: str) -> tuple[str, str]:
    """(partition id, node id of its leader) for the partition holding `pk`."""
    topo = cluster.topology
    part = partition_of(topo, pk)

    async def ask() -> tuple[str, str]:
        client = StorageClient(node_addresses(topo))
        try:
            voters = tuple(sorted(node_addresses(topo)))
            table_id = await _table_id(client, voters, table)
            body = get_body(table_id, {"pk": {"S": pk}, "sk": {"N": "0"}}, consistent=True)
            node, _ = await client.call_leader(part.id, "Get", body, replicas=part.replicas)
            return part.id, node
        finally:
            await client.close()
    return asyncio.run(ask())


def digests(cluster: Cluster) -> dict[str, dict[str, dict[str, Any]]]:
    """group -> node -> the node's `Digest` answer for the group (applied index, digest of the
    group's items, digest of its change records) over every replica that answered."""
    topo = cluster.topology
    pmap = PartitionMap.build(RingSnapshot.for_region(topo, "us-east-1"), topo)

    async def ask() -> dict[str, dict[str, dict[str, Any]]]:
        client = StorageClient(node_addresses(topo))
        out: dict[str, dict[str, dict[str, Any]]] = {}
        try:
            for part in pmap.partitions:
                for node in part.replicas:
                    reply = await client.call(node, "Digest", part.id, {"group": part.id})
                    if reply.ok:
                        out.setdefault(part.id, {})[node] = reply.json()
        finally:
            await client.close()
        return out
    return asyncio.run(ask())


def replicas_identical(cluster: Cluster) -> bool:
    groups = digests(cluster)
    return bool(groups) and all(len(by_node) == 3
                                and len({body["digest"] for body in by_node.values()}) == 1
                                for by_node in groups.values())


@dataclass
class Writers:
    """Threads that put (pk, sk=n) with n counting up per thread; records every acknowledged
    write with the times it was sent and acknowledged."""

    client_factory: Any
    table: str
    pk: str
    threads: int = 4
    acked: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, acked, n)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _run(self, index: int) -> None:
        client = self.client_factory()
        for n in range(index, 10**7, self.threads):  # bounded; stopped long before
            if self._stop.is_set():
                return
            sent = time.monotonic()
            try:
                client.put_item(TableName=self.table, Item={
                    "pk": {"S": self.pk}, "sk": {"N": str(n)}, "v": {"S": "x" * 100}})
            except (ClientError, BotoCoreError):
                with self._lock:
                    self.errors += 1
                continue
            with self._lock:
                self.acked.append((sent, time.monotonic(), n))

    def acked_sent_after(self, moment: float) -> list[float]:
        """Acknowledgement times of writes sent after `moment` (writes in flight at `moment`
        may have committed before it)."""
        with self._lock:
            return [acked for sent, acked, _ in self.acked if sent > moment]

    def acked_numbers(self) -> set[int]:
        with self._lock:
            return {n for _, _, n in self.acked}
