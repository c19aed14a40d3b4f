"""Helpers for global-tables tests on a real two-region cluster."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterable

from chaos.checkers import CandidateWrite
from dynalab.links import clock_offset_path
from replication.replicator.region import LocalRegion
from tests.cluster_node.harness import StorageClient
from tests.e2e.cluster import ONE_REGION, Cluster, wait_active, wait_for
from tests.e2e.failover import node_addresses

A, B = "us-east-1", "eu-west-1"

# The one-region test topology plus a second region shaped the same way.
TWO_REGIONS = ONE_REGION + """\
  eu-west-1:
    azs:
      eu-west-1a: {{nodes: [euw1-a1]}}
      eu-west-1b: {{nodes: [euw1-b1]}}
      eu-west-1c: {{nodes: [euw1-c1]}}
    routers:
      - {{id: euw1-router, az: eu-west-1a}}
"""


def new_table_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_table(client: Any, name: str) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    wait_active(client, name)


def replicas_active(cluster: Cluster, name: str) -> bool:
    for region in (A, B):
        table = cluster.client(region).describe_table(TableName=name)["Table"]
        replicas = table.get("Replicas") or []
        if table["TableStatus"] != "ACTIVE" or {r["RegionName"] for r in replicas} != {A, B} \
                or any(r["ReplicaStatus"] != "ACTIVE" for r in replicas):
            return False
    return True


def make_global(cluster: Cluster, name: str) -> None:
    """A table created in A and replicated to B, both replicas ACTIVE."""
    create_table(cluster.client(A), name)
    cluster.client(A).update_table(TableName=name,
                                   ReplicaUpdates=[{"Create": {"RegionName": B}}])
    wait_for(lambda: replicas_active(cluster, name), f"{name} ACTIVE in both regions", 30)


def drop_global(cluster: Cluster, name: str) -> None:
    client = cluster.client(A)
    client.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": B}}])
    client.delete_table(TableName=name)


def scan_all(client: Any, name: str) -> dict[str, dict[str, Any]]:
    """pk -> item, a consistent scan of every page."""
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
    for _ in range(10_000):
        page = client.scan(**kwargs)
        items.update({i["pk"]["S"]: i for i in page["Items"]})
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    raise AssertionError("scan did not end")


def converged(cluster: Cluster, name: str) -> dict[str, dict[str, Any]] | None:
    """The common contents once both regions hold the same items (None before)."""
    a, b = scan_all(cluster.client(A), name), scan_all(cluster.client(B), name)
    return a if a == b else None


def item_version(cluster: Cluster, region: str, name: str, pk: str) -> dict[str, Any]:
    """`DynalabItemVersion`: {"Item", "Version": {"ts", "origin"}} or {} (no item)."""
    request = urllib.request.Request(cluster.endpoint(region), method="POST", data=json.dumps(
        {"TableName": name, "Key": {"pk": {"S": pk}}}).encode(), headers={
        "X-Amz-Target": "DynamoDB_20120810.DynalabItemVersion",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": f"AWS4-HMAC-SHA256 Credential=t/20200101/{region}/dynamodb/aws4_request,"
                         " SignedHeaders=host, Signature=0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read() or b"{}"))


def local_writes(cluster: Cluster, region: str, name: str) -> dict[str, list[CandidateWrite]]:
    """Every local write of `region` to table `name`, read back from its change records
    (StreamRead of every shard): pk -> [(item or None, (wall, logical), region)]. Together with
    the other region's, these are all the candidates LWW chooses from."""
    topology = cluster.topology

    async def read() -> list[dict[str, Any]]:
        local = LocalRegion(topology, region)
        try:
            await local.catalog.refresh()
            table = local.catalog.get(name)
            assert table is not None, f"{name} not in {region}'s catalog"
            records = []
            for shard in local.shards():
                after = None
                for _ in range(10_000):
                    page = await local.stream_read(table.id, shard, after, 1000)
                    records += page.records
                    if not page.records:
                        break
                    after = page.records[-1]["seq"]
            return records
        finally:
            await local.close()

    writes: dict[str, list[CandidateWrite]] = {}
    for record in asyncio.run(read()):
        if record["origin"] != region:
            continue  # applied from elsewhere: the other region lists it as its own
        item = None if record["event"] == "REMOVE" else record["new"]
        writes.setdefault(record["keys"]["pk"]["S"], []).append(
            CandidateWrite(item, tuple(record["ts"]), region))  # type: ignore[arg-type]
    return writes


def merged(*parts: dict[str, list[CandidateWrite]]) -> dict[str, list[CandidateWrite]]:
    out: dict[str, list[CandidateWrite]] = {}
    for part in parts:
        for key, writes in part.items():
            out.setdefault(key, []).extend(writes)
    return out


def node_ids(cluster: Cluster, region: str) -> list[str]:
    return [n["id"] for n in cluster.info["regions"][region]["nodes"]]


def held_stream_reads(cluster: Cluster, region: str) -> int:
    """The StreamReads `region`'s nodes hold right now (admin `Stats`), summed."""
    addresses = node_addresses(cluster.topology, region)

    async def ask() -> int:
        client = StorageClient(addresses)
        try:
            replies = [await client.call(node, "Stats", "", {}) for node in addresses]
            return sum(int(r.json()["execute"]["stream_reads_held"]) for r in replies if r.ok)
        finally:
            await client.close()
    return asyncio.run(ask())


def transfer_leader(cluster: Cluster, region: str, group: str, leader: str, to: str) -> None:
    """Ask `leader` to hand `group` to `to` (admin `TransferLeader`)."""
    async def ask() -> None:
        client = StorageClient(node_addresses(cluster.topology, region))
        try:
            reply = await client.call(leader, "TransferLeader", group, {"to": to})
            assert reply.ok, reply
        finally:
            await client.close()
    asyncio.run(ask())


def set_clock_offset(cluster: Cluster, nodes: Iterable[str], offset_ms: int) -> None:
    """What `dynalab chaos skew` does (docs/cluster.md): nodes re-read it about once a second."""
    for node in nodes:
        path: Path = clock_offset_path(cluster.data_dir, node)
        path.parent.mkdir(parents=True, exist_ok=True)
        if offset_ms:
            path.write_text(json.dumps({"offset_ms": offset_ms}))
        else:
            path.unlink(missing_ok=True)


def wall_ms() -> int:
    return int(time.time() * 1000)
