"""Streams across a leader failover: kill -9 the leader of a partition while writers run, restart
it, then read the partition's shard: every acknowledged change is there, in each writer's order,
each exactly once; the restarted replica (which applied its log again) holds the same shard as
the others."""
from __future__ import annotations

import time
from collections import Counter
import pytest

from tests.e2e.cluster import Cluster, wait_for
from tests.e2e.failover import Writers, leader_of
from tests.streams.helpers import make_table, read_shard, shard_ids, shards_identical

pytestmark = pytest.mark.cluster

HOT = "hot"


def test_every_acknowledged_change_survives_a_leader_kill_once_and_in_order(
        own_cluster: Cluster) -> None:
    ddb = own_cluster.client()
    streams = own_cluster.client(service="dynamodbstreams")
    name, arn = make_table(ddb, "NEW_IMAGE", prefix="failover", range_key=True)
    assert arn is not None
    partition, leader = leader_of(own_cluster, name, HOT)
    writers = Writers(own_cluster.client, name, HOT)
    writers.start()
    try:
        wait_for(lambda: len(writers.acked) >= 30, "writes flowing before the kill", 30)
        own_cluster.run("kill", leader)
        killed_at = time.monotonic()
        wait_for(lambda: len(writers.acked_sent_after(killed_at)) >= 30,
                 "writes acknowledged by the new leader", 40)
    finally:
        writers.stop()
    own_cluster.run("restart", leader)
    wait_for(lambda: shards_identical(own_cluster, name),
             "replicas with identical items and change records", 60, 0.5)

    (shard,) = [s for s in shard_ids(streams, arn) if s.endswith(partition.removeprefix("p"))]
    records = read_shard(streams, arn, shard, limit=1000)
    numbers = [int(r["dynamodb"]["Keys"]["sk"]["N"]) for r in records
               if r["dynamodb"]["Keys"]["pk"]["S"] == HOT]
    duplicated = [n for n, count in Counter(numbers).items() if count > 1]
    assert not duplicated, f"changes recorded twice: {duplicated[:10]}"
    missing = writers.acked_numbers() - set(numbers)
    assert not missing, f"acknowledged changes missing from the stream: {sorted(missing)[:10]}"
    assert all(r["eventName"] == "INSERT" for r in records)
    for thread in range(writers.threads):  # each writer waits for one put before the next
        own = [n for n in numbers if n % writers.threads == thread]
        assert own == sorted(own), f"writer {thread}'s changes out of order"
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs)
    print(f"{len(numbers)} records, {len(writers.acked_numbers())} acknowledged, "
          f"{writers.errors} client errors")
