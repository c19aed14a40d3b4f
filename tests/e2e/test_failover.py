"""Failover through the router, as a user sees it: kill -9 a partition's leader under a boto3
write load; writes resume, no acknowledged write is lost, the killed node catches up and the three
replicas end identical. Losing a whole AZ leaves the region readable and writable."""
from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import pytest

from tests.e2e.cluster import Cluster, wait_active, wait_for
from tests.e2e.failover import Writers, leader_of, replicas_identical

pytestmark = pytest.mark.cluster


def make_table(client: Any) -> str:
    name = f"failover-{uuid.uuid4().hex[:6]}"
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}])
    wait_active(client, name)
    return name


def stored_numbers(client: Any, table: str, pk: str) -> set[int]:
    numbers: set[int] = set()
    start: dict | None = None
    for _ in range(10_000):  # bounded pages
        page = client.query(TableName=table, ConsistentRead=True,
                            KeyConditionExpression="pk = :p",
                            ExpressionAttributeValues={":p": {"S": pk}},
                            **({"ExclusiveStartKey": start} if start else {}))
        numbers |= {int(item["sk"]["N"]) for item in page["Items"]}
        start = page.get("LastEvaluatedKey")
        if not start:
            return numbers
    raise AssertionError("query did not finish")


def kill_leader_once(cluster: Cluster, client: Any, table: str, pk: str) -> float:
    """Kill -9 the leader of pk's partition under load; return seconds until the first write
    acknowledged after the kill. Restarts the node and waits for identical replicas."""
    _, leader = leader_of(cluster, table, pk)
    writers = Writers(cluster.client, table, pk)
    writers.start()
    try:
        wait_for(lambda: len(writers.acked) >= 20, "writes flowing before the kill", 30)
        cluster.run("kill", leader)
        killed_at = time.monotonic()  # SIGKILL was sent by the time `dynalab kill` returned
        first = wait_for(lambda: writers.acked_sent_after(killed_at), "a write sent after the "
                         "kill acknowledged", 30, interval_s=0.02)
        failover_s = min(first) - killed_at
        wait_for(lambda: len(writers.acked_sent_after(killed_at)) >= 20, "writes resumed", 30)
    finally:
        writers.stop()
    acked = writers.acked_numbers()
    missing = acked - stored_numbers(client, table, pk)
    assert not missing, f"acknowledged writes lost after killing {leader}: {sorted(missing)[:10]}"
    cluster.run("restart", leader)
    wait_for(lambda: replicas_identical(cluster), "replicas identical after restart", 60, 0.5)
    return failover_s


def test_leader_kill_under_load_loses_nothing(own_cluster: Cluster) -> None:
    client = own_cluster.client()
    table = make_table(client)
    failover_s = kill_leader_once(own_cluster, client, table, "hot")
    print(f"failover: {failover_s * 1000:.0f} ms from kill -9 to the next acknowledged write")


@pytest.mark.soak
def test_twenty_leader_kills(own_cluster: Cluster) -> None:
    """The note's failover figures: median and max over 20 kills, on varying partitions."""
    client = own_cluster.client()
    table = make_table(client)
    times = [kill_leader_once(own_cluster, client, table, f"hot-{round_}")
             for round_ in range(20)]
    print(f"failover over {len(times)} kills: median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms, all {[round(t * 1000) for t in times]}")


def test_losing_a_whole_az_leaves_the_region_available(own_cluster: Cluster) -> None:
    client = own_cluster.client()
    table = make_table(client)
    for n in range(20):
        client.put_item(TableName=table, Item={"pk": {"S": f"k{n}"}, "sk": {"N": "0"}})
    # The router lives in us-east-1a: losing that AZ's nodes also takes its preferred replicas
    # for eventually consistent reads away.
    own_cluster.run("kill", "use1-a1")
    for n in range(20, 40):
        client.put_item(TableName=table, Item={"pk": {"S": f"k{n}"}, "sk": {"N": "0"}})
    for n in range(40):
        key = {"pk": {"S": f"k{n}"}, "sk": {"N": "0"}}
        assert "Item" in client.get_item(TableName=table, Key=key, ConsistentRead=True)
        wait_for(lambda: "Item" in client.get_item(TableName=table, Key=key), "eventual read", 10)
    scanned = client.scan(TableName=table, ConsistentRead=True, Select="COUNT")
    assert scanned["Count"] == 40
