"""Three real `python -m node` processes on 127.0.0.1 (one region, 3 AZs x 1 node, 4 vnodes each:
12 partition groups plus `meta`), driven over Storage.Execute."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from dynalab import layout
from dynalab.values import item_size
from tests.cluster_node.harness import (NODE_IDS, NodeCluster, SCHEMA, StorageClient, TABLE_DEF,
                                        all_groups, assert_replicas_agree, create_table, get_body,
                                        item, key_of, put_body, range_body, run_scenario,
                                        serving_cluster, update_body, wait_until)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    with serving_cluster(tmp_path_factory.mktemp("nodes"), vnodes=4) as nodes:
        yield nodes


def run(cluster: NodeCluster, scenario: Callable[[StorageClient], Awaitable[None]],
        timeout_s: float = 60) -> None:
    run_scenario(cluster, scenario, timeout_s)


def followers(cluster: NodeCluster, leader: str) -> list[str]:
    return [n for n in NODE_IDS if n != leader]


def test_catalog_through_the_meta_leader(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        leader, first = await client.call_leader("meta", "Meta", {"op": "Catalog"})
        assert first.ok
        epoch0 = first.json()["epoch"]
        _, created = await client.call_leader("meta", "Meta", {"op": "CreateTable", **TABLE_DEF,
                                                               "name": "cat"})
        entry = created.json()["table"]
        assert entry["status"] == "CREATING" and entry["name"] == "cat"
        _, dup = await client.call_leader("meta", "Meta", {"op": "CreateTable", **TABLE_DEF,
                                                           "name": "cat"})
        assert dup.error_type == "ResourceInUseException"
        _, missing = await client.call_leader("meta", "Meta", {"op": "DeleteTable",
                                                               "name": "nope"})
        assert missing.error_type == "ResourceNotFoundException"
        leader, catalog = await client.call_leader("meta", "Meta", {"op": "Catalog"})
        body = catalog.json()
        assert body["epoch"] == epoch0 + 1 and body["tables"]["cat"]["id"] == entry["id"]
        for other in followers(cluster, leader):  # the catalog is served by the leader only
            reply = await client.call(other, "Meta", "meta", {"op": "Catalog"})
            assert (reply.error_type, reply.leader_hint) == ("NotLeader", leader)
        _, busy = await client.call_leader("meta", "Meta", {"op": "DeleteTable", "name": "cat"})
        assert busy.error_type == "ResourceInUseException"  # still CREATING
        for op, status in (("SetStatus", "ACTIVE"), ("DeleteTable", ""), ("SetStatus", "DELETED")):
            body = {"op": op, "name": "cat", "id": entry["id"], "status": status}
            _, reply = await client.call_leader("meta", "Meta", body)
            assert reply.ok, reply
        _, catalog = await client.call_leader("meta", "Meta", {"op": "Catalog"})
        assert "cat" not in catalog.json()["tables"]
    run(cluster, scenario)


def test_writes_conditions_and_reads(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table = await create_table(client, "rw")
        first = item("alice", 1, v="one")
        group = cluster.partition_of(first, SCHEMA).id
        leader, reply = await client.call_leader(group, "Write", put_body(table, first))
        assert reply.ok and reply.json() == {}

        # A failed condition answers CCF (with the old item when asked) and changes nothing.
        changed = item("alice", 1, v="two")
        reply = await client.call(leader, "Write", group, put_body(
            table, changed, ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD"))
        assert reply.error_type == "ConditionalCheckFailedException"
        assert reply.json() == {"Item": first}
        reply = await client.call(leader, "Write", group, update_body(
            table, key_of(first), UpdateExpression="SET n = :n", ReturnValues="ALL_NEW",
            ExpressionAttributeValues={":n": {"N": "5"}}))
        assert reply.json() == {"Attributes": {**first, "n": {"N": "5"}}}

        expected = {**first, "n": {"N": "5"}}
        reply = await client.call(leader, "Get", group, get_body(table, key_of(first), True))
        assert reply.json() == {"Item": expected}
        for other in followers(cluster, leader):
            # writes and consistent reads go to the leader ...
            for op, body in (("Write", put_body(table, changed)),
                             ("Get", get_body(table, key_of(first), True))):
                reply = await client.call(other, op, group, body)
                assert (reply.error_type, reply.leader_hint) == ("NotLeader", leader)

            # ... eventually consistent reads to any replica, once it has applied the entry
            async def caught_up(node: str = other) -> bool:
                got = await client.call(node, "Get", group, get_body(table, key_of(first), False))
                return got.ok and got.json() == {"Item": expected}
            await wait_until(caught_up, 10, f"{other} to apply the update")
        reply = await client.call(leader, "Get", group,
                                  get_body(table, key_of(item("alice", 2)), True))
        assert reply.json() == {"Item": None}
    run(cluster, scenario)


def test_range_pages_by_limit_and_bytes_in_both_directions(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table = await create_table(client, "ranges")
        items = [item("carol", sk, pad="x" * (10 * sk)) for sk in range(20)]
        group = cluster.partition_of(items[0], SCHEMA).id
        for it in items:
            _, reply = await client.call_leader(group, "Write", put_body(table, it))
            assert reply.ok, reply
        part = next(p for p in cluster.pmap.partitions if p.id == group)
        (low, high), = [(r.low, r.high) for r in layout.token_ranges(table, part.start, part.end)
                        if r.low <= layout.item_key(table, key_of(items[0]), SCHEMA) < r.high]

        async def pages(reverse: bool, **limits: Any) -> list[list[Any]]:
            out: list[list[Any]] = []
            lo, hi = low, high
            for _ in range(50):  # bounded: 20 items
                body = range_body(table, lo, hi, reverse=reverse, consistent=True, **limits)
                _, reply = await client.call_leader(group, "Range", body)
                page = reply.json()
                # the page's size, which the router counts instead of sizing the items again
                assert page["bytes"] == sum(item_size(it) for _, it in page["Items"])
                out.append(page["Items"])
                if not page["more"]:
                    return out
                last = base64.b64decode(page["Items"][-1][0])
                lo, hi = (lo, last) if reverse else (last + b"\x00", hi)
            raise AssertionError("Range never ended")

        forward = await pages(False, limit=7)
        assert [len(p) for p in forward] == [7, 7, 6]
        assert [it for p in forward for _, it in p] == items
        backward = await pages(True, limit=8)
        assert [len(p) for p in backward] == [8, 8, 4]
        assert [it for p in backward for _, it in p] == items[::-1]
        # The item that crosses max_bytes is included: sizes 0..2 stay under, 3 crosses it.
        budget = sum(item_size(it) for it in items[:3]) + 1
        by_bytes = await pages(False, max_bytes=budget)
        assert [it for _, it in by_bytes[0]] == items[:4]
        # An exact fit stops there: `more` only says whether further items exist.
        exact = await pages(False, max_bytes=sum(item_size(it) for it in items))
        assert len(exact) == 1 and len(exact[0]) == 20
        # A range wider than the partition is clamped to it (other groups' items not leaked).
        _, reply = await client.call_leader(group, "Range", range_body(
            table, layout.table_prefix(table), layout.table_prefix(table) + b"\xff" * 9))
        assert [it for _, it in reply.json()["Items"]] == items
    run(cluster, scenario)


def test_batch_write_is_one_entry_and_drop_table_clears_every_replica(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table, keep = await create_table(client, "batch"), await create_table(client, "keep")
        items = [item("dave", sk, v=str(sk)) for sk in range(10)]
        group = cluster.partition_of(items[0], SCHEMA).id
        _, reply = await client.call_leader(group, "Write", put_body(keep, items[0]))
        leader, digest = await client.call_leader(group, "Digest", {"group": group})
        before = digest.json()["applied"]  # the index of that write's entry
        _, reply = await client.call_leader(group, "BatchWrite", {
            "writes": [put_body(table, it) for it in items]})
        assert reply.ok and reply.json() == {}
        leader, digest = await client.call_leader(group, "Digest", {"group": group})
        assert digest.json()["applied"] == before + 1  # one proposal for the whole batch
        for it in items:
            _, reply = await client.call_leader(group, "Get", get_body(table, key_of(it), True))
            assert reply.json() == {"Item": it}

        for part in cluster.pmap.partitions:
            _, reply = await client.call_leader(part.id, "DropTable", {"table": table})
            assert reply.ok, reply
        _, reply = await client.call_leader(group, "Get", get_body(keep, key_of(items[0]), True))
        assert reply.json() == {"Item": items[0]}  # another table in the same partition stays
        prefix = layout.table_prefix(table)
        for node in NODE_IDS:  # every replica dropped the items, not just the leader
            async def empty(node: str = node) -> bool:
                got = await client.call(node, "Range", group,
                                        range_body(table, prefix, prefix + b"\xff" * 9))
                return got.ok and got.json() == {"Items": [], "more": False, "bytes": 0}
            await wait_until(empty, 10, f"{node} to drop the table")
        await assert_replicas_agree(client, [group])
    run(cluster, scenario)


def test_a_maximal_batch_write_replicates_as_one_entry(cluster: NodeCluster) -> None:
    """25 items of ~390 KB: a ~10 MB log entry, more than a default raft batch may hold."""
    async def scenario(client: StorageClient) -> None:
        table = await create_table(client, "big")
        items = [item("frank", sk, pad=str(sk % 10) * 390_000) for sk in range(25)]
        group = cluster.partition_of(items[0], SCHEMA).id
        _, reply = await client.call_leader(group, "BatchWrite", {
            "writes": [put_body(table, it) for it in items]}, deadline_s=30, attempt_s=20)
        assert reply.ok, reply
        small = item("frank", 99, v="after")
        _, reply = await client.call_leader(group, "Write", put_body(table, small))
        assert reply.ok, reply
        await assert_replicas_agree(client, [group])
        for node in NODE_IDS:
            got = await client.call(node, "Get", group, get_body(table, key_of(items[-1]), False))
            assert got.json() == {"Item": items[-1]}
    run(cluster, scenario)


def test_requests_the_node_cannot_serve(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        reply = await client.call("n1", "Write", "pnothere", {"table": "0" * 16, "write": {}})
        assert (reply.error_type, reply.leader_hint) == ("NotLeader", "")
        group = cluster.pmap.partitions[0].id
        reply = await client.call("n1", "Get", group, {"table": "xyz", "key": "AA=="})
        assert reply.error_type == "ValidationException"
        reply = await client.call("n1", "Frobnicate", group, {})
        assert reply.error_type == "UnknownOperationException"
        leader, reply = await client.call_leader(group, "Write", {"table": "0" * 16,
                                                                  "write": {"op": "PutItem"}})
        assert reply.error_type == "ValidationException"  # refused before it is proposed
    run(cluster, scenario)


def test_replicas_agree_on_every_group(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        await assert_replicas_agree(client, all_groups(cluster))
    run(cluster, scenario)


def test_stats_count_the_traffic_and_transfer_leader_moves_a_group(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table = await create_table(client, "admin")
        it = item("stats", 1, v="x")
        group = cluster.partition_of(it, SCHEMA).id
        leader, reply = await client.call_leader(group, "Write", put_body(table, it))
        assert reply.ok
        stats = (await client.call(leader, "Stats", "", {})).json()
        assert stats["node"] == leader and stats["leaders"][group] == leader
        assert stats["execute"]["requests_in"] >= 1 and stats["driver"]["entries_applied"] >= 1
        assert stats["logstore"]["synced"] >= 1 and stats["statedb_writes"] >= 1
        for peer in followers(cluster, leader):
            assert stats["raft"][peer]["batches_sent"] >= 1
            assert stats["raft"][peer]["messages_received"] >= 1

        target = followers(cluster, leader)[0]
        reply = await client.call(target, "TransferLeader", group, {"to": leader})
        assert reply.error_type == "NotLeader"  # only the leader hands a group over
        reply = await client.call(leader, "TransferLeader", group, {"to": "nobody"})
        assert reply.error_type == "ValidationException"
        reply = await client.call(leader, "TransferLeader", group, {"to": target})
        assert reply.ok, reply

        async def moved() -> bool:
            got = await client.call(target, "Stats", "", {})
            return got.ok and got.json()["leaders"][group] == target
        await wait_until(moved, 15, f"{target} to lead {group}")
        client.leaders.pop(group, None)
        now, reply = await client.call_leader(group, "Write", put_body(table, it))
        assert reply.ok and now == target
    run(cluster, scenario)


def test_sigterm_stops_cleanly_and_data_outlives_the_processes(cluster: NodeCluster,
                                                               tmp_path: Path) -> None:
    async def write(client: StorageClient) -> None:
        table = await create_table(client, "durable")
        it = item("erin", 1, v="kept")
        _, reply = await client.call_leader(cluster.partition_of(it, SCHEMA).id, "Write",
                                            put_body(table, it))
        assert reply.ok
        (tmp_path / "table").write_text(table)
    run(cluster, write)
    for node in NODE_IDS:
        assert cluster.terminate(node) == 0, cluster.tail(node)
        assert f"node {node} stopped" in cluster.tail(node, 1000)
    cluster.start_all()

    async def read(client: StorageClient) -> None:
        for node in NODE_IDS:
            await cluster.wait_serving(node)
        table = (tmp_path / "table").read_text()
        it = item("erin", 1, v="kept")
        _, reply = await client.call_leader(cluster.partition_of(it, SCHEMA).id, "Get",
                                            get_body(table, key_of(it), True))
        assert reply.json() == {"Item": it}
        _, reply = await client.call_leader("meta", "Meta", {"op": "Catalog"})
        assert reply.json()["tables"]["durable"]["id"] == table
        await assert_replicas_agree(client, all_groups(cluster))
    run(cluster, read)
