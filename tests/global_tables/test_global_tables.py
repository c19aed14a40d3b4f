"""Global tables on a real two-region cluster (nodes, routers, replicators as processes),
driven with boto3: replication both ways, backfill, the causal case under clock skew, concurrent
writers judged by the convergence checker, a delete racing an older put, kill -9 of a
replicator mid-stream, removing a replica, the lag report, the demo, and that a write made while
the shippers' reads are held by the nodes (long polls) ships at once, also after its shard's
leader moved."""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from chaos.checkers import check_convergence
from dynalab.keys import partition_token
from dynalab.ring import PartitionMap, RingSnapshot
from tests.e2e.cluster import Cluster, dynalab, wait_for
from tests.e2e.failover import leader_of
from tests.global_tables.gt import (A, B, converged, create_table, drop_global,
                                    held_stream_reads, item_version, local_writes, make_global,
                                    merged, new_table_name, node_ids, replicas_active, scan_all,
                                    set_clock_offset, transfer_leader, wall_ms)

pytestmark = pytest.mark.cluster


def _item(pk: str, **values: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, **{k: {"S": v} for k, v in values.items()}}


def test_items_written_in_one_region_appear_in_the_other(two_regions: Cluster) -> None:
    name = new_table_name("both-ways")
    make_global(two_regions, name)
    a, b = two_regions.client(A), two_regions.client(B)
    for i in range(20):
        a.put_item(TableName=name, Item=_item(f"a{i}", v="from-a"))
        b.put_item(TableName=name, Item=_item(f"b{i}", v="from-b"))
    a.update_item(TableName=name, Key={"pk": {"S": "b3"}}, UpdateExpression="SET extra = :x",
                  ExpressionAttributeValues={":x": {"S": "added-in-a"}})
    b.delete_item(TableName=name, Key={"pk": {"S": "a5"}})
    expected = {**{f"a{i}": _item(f"a{i}", v="from-a") for i in range(20) if i != 5},
                **{f"b{i}": _item(f"b{i}", v="from-b") for i in range(20)}}
    expected["b3"] = _item("b3", v="from-b", extra="added-in-a")
    contents = wait_for(lambda: (c := converged(two_regions, name)) == expected and c,
                        "both regions to hold the 39 items", 20)
    assert contents == expected
    # Each item carries the region that wrote it last (hidden from the DynamoDB API).
    assert item_version(two_regions, B, name, "a1")["Version"]["origin"] == A
    assert item_version(two_regions, A, name, "b3")["Version"]["origin"] == A
    drop_global(two_regions, name)


def test_a_new_replica_gets_the_existing_items_and_both_describe_it(two_regions: Cluster) -> None:
    name = new_table_name("backfill")
    a, b = two_regions.client(A), two_regions.client(B)
    create_table(a, name)
    before = {f"k{i}": _item(f"k{i}", v="old") for i in range(60)}
    for item in before.values():
        a.put_item(TableName=name, Item=item)
    answer = a.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": B}}])
    description = answer["TableDescription"]
    assert description["StreamSpecification"] == {"StreamEnabled": True,
                                                   "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert {r["RegionName"]: r["ReplicaStatus"] for r in description["Replicas"]} == {
        A: "ACTIVE", B: "CREATING"}
    wait_for(lambda: replicas_active(two_regions, name), "the replica ACTIVE", 30)
    assert scan_all(b, name) == before  # ACTIVE means the backfill is complete
    described = b.describe_table(TableName=name)["Table"]
    assert described["GlobalTableVersion"] == "2019.11.21"
    assert described["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    # Both replicas take writes.
    b.put_item(TableName=name, Item=_item("from-b", v="new"))
    wait_for(lambda: a.get_item(TableName=name, Key={"pk": {"S": "from-b"}}).get("Item"),
             "B's write in A", 10)
    drop_global(two_regions, name)


def test_replica_updates_are_validated(two_regions: Cluster) -> None:
    name = new_table_name("invalid")
    a = two_regions.client(A)
    create_table(a, name)
    a.update_table(TableName=name, StreamSpecification={"StreamEnabled": True,
                                                        "StreamViewType": "KEYS_ONLY"})
    for region, words in ((B, "NEW_AND_OLD_IMAGES"), ("ap-south-1", "not part of this cluster"),
                          (A, "already there")):
        with pytest.raises(a.exceptions.ClientError) as caught:
            a.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": region}}])
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert words in caught.value.response["Error"]["Message"]
    assert name not in two_regions.client(B).list_tables()["TableNames"]
    a.delete_table(TableName=name)


def test_deleting_a_replica_drops_it_and_stops_replication(two_regions: Cluster) -> None:
    name = new_table_name("drop")
    make_global(two_regions, name)
    a, b = two_regions.client(A), two_regions.client(B)
    with pytest.raises(a.exceptions.ClientError) as caught:  # the replicators ship from it
        a.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    assert "cannot be disabled" in caught.value.response["Error"]["Message"]
    a.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": B}}])
    wait_for(lambda: name not in b.list_tables()["TableNames"], "B's replica deleted", 30)
    assert "Replicas" not in a.describe_table(TableName=name)["Table"]
    a.put_item(TableName=name, Item=_item("after", v="regional again"))
    assert a.get_item(TableName=name, Key={"pk": {"S": "after"}}, ConsistentRead=True)["Item"]
    a.delete_table(TableName=name)


def test_a_causally_later_write_wins_though_its_clock_is_a_minute_behind(
        two_regions: Cluster) -> None:
    name = new_table_name("causal")
    make_global(two_regions, name)
    a, b = two_regions.client(A), two_regions.client(B)
    set_clock_offset(two_regions, node_ids(two_regions, B), -60_000)
    try:
        # The nodes re-read the offset about once a second, each on its own beat: wait until
        # every partition leader of B stamps in the past (one probe may find a skewed leader
        # while the leader of "doc"'s partition has not re-read the file yet).
        wait_for(lambda: max(_stamped_wall_ms(two_regions, B, name)) < wall_ms() - 50_000,
                 "B's clock 60 s behind", 15, interval_s=0.3)
        a.put_item(TableName=name, Item=_item("doc", v="v1"))
        wait_for(lambda: b.get_item(TableName=name, Key={"pk": {"S": "doc"}},
                                    ConsistentRead=True).get("Item") == _item("doc", v="v1"),
                 "v1 read in B", 15)
        b.put_item(TableName=name, Item=_item("doc", v="v2"))  # follows v1: it read it
        for region in (A, B):
            wait_for(lambda r=region: item_version(two_regions, r, name, "doc").get("Item")
                     == _item("doc", v="v2"), f"v2 in {region}", 15)
        final = {r: item_version(two_regions, r, name, "doc") for r in (A, B)}
        assert final[A] == final[B] and final[A]["Version"]["origin"] == B
        v2_wall_ms, v2_logical = final[A]["Version"]["ts"]
        # v2 is ordered after v1 by the logical counter past v1's timestamp, not by B's wall
        # clock (a minute behind: plain wall-clock LWW would have kept v1).
        assert v2_wall_ms > wall_ms() - 50_000 and v2_logical >= 1
    finally:
        set_clock_offset(two_regions, node_ids(two_regions, B), 0)
    wait_for(lambda: min(_stamped_wall_ms(two_regions, B, name)) > wall_ms() - 5_000,
             "B's clock back", 15, interval_s=0.3)
    drop_global(two_regions, name)


def _stamped_wall_ms(cluster: Cluster, region: str, name: str) -> list[int]:
    """The wall-clock parts of the timestamps `region`'s partition leaders stamp on a new item
    now: one fresh key per partition (a write over an existing item would tick past the stored
    timestamp instead)."""
    stamped = []
    for probe in _fresh_key_per_partition(cluster, region):
        cluster.client(region).put_item(TableName=name, Item=_item(probe, v="x"))
        stamped.append(int(item_version(cluster, region, name, probe)["Version"]["ts"][0]))
    return stamped


def _fresh_key_per_partition(cluster: Cluster, region: str) -> list[str]:
    topology = cluster.topology
    partitions = PartitionMap.build(RingSnapshot.for_region(topology, region), topology)
    keys: dict[str, str] = {}
    for _ in range(200 * len(partitions.partitions)):  # coupon collector: ample
        key = f"probe-{uuid.uuid4().hex[:12]}"
        keys.setdefault(partitions.for_token(partition_token({"S": key})).id, key)
        if len(keys) == len(partitions.partitions):
            return list(keys.values())
    raise AssertionError("no probe key found for some partition")


def test_concurrent_writers_in_both_regions_converge_to_the_lww_winner(
        two_regions: Cluster) -> None:
    name = new_table_name("concurrent")
    make_global(two_regions, name)
    keys = [f"k{i}" for i in range(15)]
    errors: list[BaseException] = []

    def writer(region: str, seed: int) -> None:
        client = two_regions.client(region)
        try:
            for step in range(60):
                key = keys[(step * 7 + seed) % len(keys)]
                if step % 9 == 4:
                    client.delete_item(TableName=name, Key={"pk": {"S": key}})
                else:
                    client.put_item(TableName=name, Item=_item(key, v=f"{region}-{step}"))
        except BaseException as error:  # noqa: BLE001 - re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(r, s)) for r, s in ((A, 0), (B, 3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    contents = wait_for(lambda: converged(two_regions, name), "identical tables", 30)
    candidates = merged(local_writes(two_regions, A, name), local_writes(two_regions, B, name))
    # Every put made a record; a delete made one only if the item was there (as in DynamoDB,
    # deleting nothing is a no-op, and so is not a candidate: it left no tombstone).
    puts = 2 * sum(1 for step in range(60) if step % 9 != 4)
    assert puts <= sum(len(w) for w in candidates.values()) <= 120
    report = check_convergence({A: scan_all(two_regions.client(A), name), B: contents},
                               candidates)
    assert report.ok, report.summary()
    drop_global(two_regions, name)


def test_a_delete_racing_an_older_put_does_not_resurrect_the_item(two_regions: Cluster) -> None:
    name = new_table_name("tombstone")
    make_global(two_regions, name)
    a, b = two_regions.client(A), two_regions.client(B)
    a.put_item(TableName=name, Item=_item("x", v="v0"))
    wait_for(lambda: b.get_item(TableName=name, Key={"pk": {"S": "x"}}).get("Item"),
             "x in B", 15)
    replicators = [f"replicator-{r}" for r in (A, B)]
    for replicator in replicators:  # neither region sees the other's write until both are made
        two_regions.run("pause", replicator)
    try:
        b.put_item(TableName=name, Item=_item("x", v="older put"))
        put = item_version(two_regions, B, name, "x")["Version"]
        wait_for(lambda: wall_ms() > put["ts"][0] + 5, "the clock to move on", 5, 0.001)
        a.delete_item(TableName=name, Key={"pk": {"S": "x"}})
        assert item_version(two_regions, A, name, "x") == {}
    finally:
        for replicator in replicators:
            two_regions.run("resume", replicator)
    # B applies A's newer delete; A skips B's older put because its tombstone is newer.
    wait_for(lambda: converged(two_regions, name) == {}, "x gone in both regions", 20)
    assert b.get_item(TableName=name, Key={"pk": {"S": "x"}}, ConsistentRead=True).get(
        "Item") is None
    drop_global(two_regions, name)


def test_replicators_killed_mid_stream_lose_nothing(two_regions: Cluster) -> None:
    name = new_table_name("kill9")
    make_global(two_regions, name)
    a = two_regions.client(A)
    expected: dict[str, dict[str, Any]] = {}
    for i in range(300):
        item = _item(f"k{i:03d}", v=f"value-{i}")
        a.put_item(TableName=name, Item=item)
        expected[f"k{i:03d}"] = item
        if i == 100:
            two_regions.run("kill", "replicator-us-east-1")  # SIGKILL of the sender, mid-stream
        if i == 150:
            two_regions.run("restart", "replicator-us-east-1")
        if i == 200:
            two_regions.run("kill", "replicator-eu-west-1")  # ... and of the receiver
        if i == 250:
            two_regions.run("restart", "replicator-eu-west-1")
    wait_for(lambda: scan_all(two_regions.client(B), name) == expected, "all 300 items in B", 30)
    assert (two_regions.data_dir / "replication" / A / "checkpoints.json").exists()
    drop_global(two_regions, name)


# Far below the shippers' wait (ShipperConfig.stream_wait_ms, 20 s): a write that reached B in
# time was read by a held read answered for it, not by one that ended with its wait (which, at
# most once per wait per shard, could by chance come within the bound: 3 samples make it rare).
SHIPPED_BOUND_S = 3.0


def _shipping_delay_s(cluster: Cluster, name: str, pk: str, value: str) -> float:
    """Seconds from a PutItem in A until a consistent GetItem in B returns it."""
    a, b = cluster.client(A), cluster.client(B)
    started = time.monotonic()
    a.put_item(TableName=name, Item=_item(pk, v=value))
    wait_for(lambda: b.get_item(TableName=name, Key={"pk": {"S": pk}}, ConsistentRead=True)
             .get("Item") == _item(pk, v=value), f"{pk}={value} in B", 15, interval_s=0.01)
    return time.monotonic() - started


def test_writes_made_while_the_reads_are_held_ship_at_once(two_regions: Cluster) -> None:
    name = new_table_name("held")
    make_global(two_regions, name)
    topology = two_regions.topology
    shards = len(PartitionMap.build(RingSnapshot.for_region(topology, A), topology).partitions)

    def all_held() -> bool:  # A's replicator holds one read per shard of this table (at least)
        return held_stream_reads(two_regions, A) >= shards
    wait_for(all_held, "every shard's read held in A", 30, interval_s=0.2)
    delays = [_shipping_delay_s(two_regions, name, f"k{i}", "held") for i in range(3)]
    assert max(delays) < SHIPPED_BOUND_S, delays

    # The leader of k0's shard hands it over while the shipper's read is held there: the read
    # ends (NotLeader) and the shipper holds its next one on the new leader.
    group, leader = leader_of(two_regions, name, "k0")
    target = next(n for n in node_ids(two_regions, A) if n != leader)
    transfer_leader(two_regions, A, group, leader, target)
    wait_for(lambda: leader_of(two_regions, name, "k0") == (group, target), "the new leader", 15)
    wait_for(all_held, "every shard's read held again", 30, interval_s=0.2)
    moved = _shipping_delay_s(two_regions, name, "k0", "after-the-move")
    assert moved < SHIPPED_BOUND_S, moved
    print(f"shipping delays {[round(d, 3) for d in delays]} s; after the move {moved:.3f} s")
    drop_global(two_regions, name)


def test_status_shows_the_lag_per_region_pair(two_regions: Cluster) -> None:
    name = new_table_name("status")
    make_global(two_regions, name)
    two_regions.client(A).put_item(TableName=name, Item=_item("k", v="v"))
    wait_for(lambda: f"{A}->{B}" in two_regions.run("status") and "link up" in
             two_regions.run("status"), "the lag lines", 15, interval_s=0.5)
    lines = [line for line in two_regions.run("status").splitlines() if "->" in line]
    assert {line.split()[0] for line in lines} == {f"{A}->{B}", f"{B}->{A}"}
    drop_global(two_regions, name)


def test_the_demo_runs_to_completion(two_regions: Cluster) -> None:
    before = set(two_regions.client(A).list_tables()["TableNames"])
    done = dynalab("demo", "--data-dir", str(two_regions.data_dir), timeout_s=90)
    assert done.returncode == 0, done.stdout + done.stderr
    for words in ("Seen in eu-west-1 after", "Both regions now hold", "Converged",
                  "the greater of the two versions", "Deleted demo-"):
        assert words in done.stdout, done.stdout
    for region in (A, B):
        tables = set(two_regions.client(region).list_tables()["TableNames"])
        assert not {t for t in tables - before if t.startswith("demo-")}
