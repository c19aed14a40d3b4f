"""Held StreamReads (`StreamRead` with `wait_ms`, docs/cluster.md "Streams and global tables") on
three real `python -m node` processes: answered as soon as a record of their shard is applied
(and not for a record of another shard), empty at the end of the wait, NotLeader when the group
moves; held without holding up the requests behind them on the same stream, gone with a closed
stream; and a StreamRead without `wait_ms` (GetRecords') is answered at once.

Every wait is for a condition with a deadline. Reads that must be answered by a record ask to be
held far longer (LONG_MS) than the test waits for them, so an answer at the end of the wait could
not pass for one."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Awaitable, Callable, Iterator

import pytest

from tests.cluster_node.harness import (NODE_IDS, NodeCluster, Reply, SCHEMA, StorageClient,
                                        execute_stat, held_call, item, key_of, put_body,
                                        run_scenario, serving_cluster, wait_until)

pytestmark = pytest.mark.cluster

LONG_MS = 60_000  # the most a node holds a read (ServiceConfig.max_watch_ms)
ANSWER_BOUND_S = 10.0  # a held read answers a record well within this
PENDING_CHECK_S = 1.0  # how long a read that must stay held is watched


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    with serving_cluster(tmp_path_factory.mktemp("nodes"), vnodes=2) as nodes:
        yield nodes


def run(cluster: NodeCluster, scenario: Callable[[StorageClient], Awaitable[None]],
        timeout_s: float = 90) -> None:
    run_scenario(cluster, scenario, timeout_s)


def new_table() -> str:
    """A table id of the test's own: its shards start empty (the node keeps no catalog)."""
    return uuid.uuid4().hex[:16]


def read_body(table: str, after: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"table": table, "after": after, "limit": 100, **extra}


def pk_in(cluster: NodeCluster, group: str, inside: bool = True) -> str:
    """A partition key whose item lies in `group` (inside) or in another partition."""
    for i in range(10_000):
        pk = f"k{i}-{uuid.uuid4().hex[:4]}"
        if (cluster.partition_of(key_of(item(pk, 1)), SCHEMA).id == group) == inside:
            return pk
    raise AssertionError(f"no key for {group}")


async def write(client: StorageClient, cluster: NodeCluster, table: str, pk: str) -> None:
    """A put that makes a change record (the router adds `stream` for a table with one)."""
    it = item(pk, 1, v="x")
    group = cluster.partition_of(key_of(it), SCHEMA).id
    _, reply = await client.call_leader(group, "Write",
                                        {**put_body(table, it), "stream": "NEW_IMAGE"})
    assert reply.ok, reply


async def shard_leader(client: StorageClient, group: str, table: str) -> str:
    leader, reply = await client.call_leader(group, "StreamRead", read_body(table))
    assert reply.ok and reply.json()["records"] == [], reply
    return leader


async def new_shard(cluster: NodeCluster, client: StorageClient,
                    partition: int = 0) -> tuple[str, str, str]:
    """A table of the test's own and its shard in the cluster's `partition`-th group:
    (table id, group, the shard's leader)."""
    table = new_table()
    group = cluster.pmap.partitions[partition].id
    return table, group, await shard_leader(client, group, table)


async def held_read(client: StorageClient, node: str, group: str, table: str,
                    wait_ms: int = LONG_MS) -> asyncio.Task[Reply]:
    return await held_call(client, node, "StreamRead", group, read_body(table, wait_ms=wait_ms),
                           wait_ms)


async def reads_held_on(client: StorageClient, node: str) -> int:
    return await execute_stat(client, node, "stream_reads_held")


async def answered(task: asyncio.Task[Reply]) -> Reply:
    async def done() -> bool:
        return task.done()
    await wait_until(done, ANSWER_BOUND_S, "the held read to be answered")
    return task.result()


async def still_held(task: asyncio.Task[Reply]) -> bool:
    done, _ = await asyncio.wait({task}, timeout=PENDING_CHECK_S)
    return not done


def pks(reply: Reply) -> list[str]:
    return [r["keys"]["pk"]["S"] for r in reply.json()["records"]]


def test_a_held_read_answers_a_record_of_its_shard_only_and_does_not_hold_up_the_stream(
        cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table, group, leader = await new_shard(cluster, client)
        other_table = new_table()
        held = await held_read(client, leader, group, table)
        # Requests sent after it on the same stream are answered while it is held; a read
        # without wait_ms (GetRecords') answers at once, even with nothing to give.
        stats = await client.call(leader, "Stats", "", {})
        plain = await client.call(leader, "StreamRead", group, read_body(table), timeout_s=3)
        assert plain.ok and plain.json()["records"] == [], plain
        assert stats.ok and stats.json()["execute"]["stream_reads_held"] >= 1
        assert not held.done()

        # Records of other shards: the same table in another partition, another table in
        # the same partition. Neither answers it.
        await write(client, cluster, table, pk_in(cluster, group, inside=False))
        await write(client, cluster, other_table, pk_in(cluster, group))
        assert await still_held(held), held.result()

        mine = pk_in(cluster, group)
        await write(client, cluster, table, mine)
        reply = await answered(held)
        assert reply.ok, reply
        assert pks(reply) == [mine]
        assert await reads_held_on(client, leader) == 0

        # Held after the record just read: the next one of the shard answers it.
        after = reply.json()["records"][-1]["seq"]
        task = asyncio.create_task(client.call(
            leader, "StreamRead", group, read_body(table, after, wait_ms=LONG_MS),
            timeout_s=LONG_MS / 1000 + 10))
        await wait_until(lambda: _holding(client, leader, 1), 10, "the second read held")
        second = pk_in(cluster, group)
        await write(client, cluster, table, second)
        reply = await answered(task)
        assert reply.ok and pks(reply) == [second], reply
    run(cluster, scenario)


async def _holding(client: StorageClient, node: str, count: int) -> bool:
    return await reads_held_on(client, node) == count


def test_a_held_read_answers_empty_at_the_end_of_its_wait_and_a_full_page_at_once(
        cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table, group, leader = await new_shard(cluster, client, partition=1)
        started = time.monotonic()
        reply = await client.call(leader, "StreamRead", group, read_body(table, wait_ms=400),
                                  timeout_s=10)
        assert reply.ok and reply.json()["records"] == [], reply
        assert time.monotonic() - started >= 0.4
        # Records already there: no wait, however long it may be.
        pk = pk_in(cluster, group)
        await write(client, cluster, table, pk)
        reply = await client.call(leader, "StreamRead", group,
                                  read_body(table, wait_ms=LONG_MS), timeout_s=5)
        assert reply.ok and pks(reply) == [pk], reply
        # limit 0 asks only for the positions: never held.
        reply = await client.call(leader, "StreamRead", group,
                                  read_body(table, reply.json()["latest"], wait_ms=LONG_MS,
                                            limit=0), timeout_s=5)
        assert reply.ok and reply.json()["records"] == [], reply
    run(cluster, scenario)


def test_held_reads_the_node_refuses(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table, group, leader = await new_shard(cluster, client)
        follower = next(n for n in NODE_IDS if n != leader)
        reply = await client.call(follower, "StreamRead", group, read_body(table, wait_ms=100),
                                  timeout_s=5)
        assert (reply.error_type, reply.leader_hint) == ("NotLeader", leader)
        for bad in (LONG_MS + 1, -5, True, "3", 1.5):
            reply = await client.call(leader, "StreamRead", group,
                                      read_body(table, wait_ms=bad), timeout_s=5)
            assert reply.error_type == "ValidationException", (bad, reply)
    run(cluster, scenario)


def test_a_closed_stream_leaves_no_held_read_behind(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table, group, leader = await new_shard(cluster, client)
        other = StorageClient({leader: cluster.address(leader)})
        try:
            held = await held_read(other, leader, group, table)
            await wait_until(lambda: _holding(client, leader, 1), 10, "the read to be held")
            await other.close()  # the stream is cancelled with the read on it
            await wait_until(lambda: _holding(client, leader, 0), 10,
                             "the node to drop the read")
            assert held.done() and not held.result().ok
        finally:
            await other.close()
    run(cluster, scenario)


def test_a_held_read_answers_not_leader_when_its_group_moves(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        table, group, leader = await new_shard(cluster, client)
        target = next(n for n in NODE_IDS if n != leader)
        held = await held_read(client, leader, group, table)
        assert await reads_held_on(client, leader) >= 1 and not held.done()
        moved = await client.call(leader, "TransferLeader", group, {"to": target})
        assert moved.ok, moved
        reply = await answered(held)
        assert (reply.error_type, reply.leader_hint) == ("NotLeader", target), reply
        assert await reads_held_on(client, leader) == 0
        # The new leader holds reads of the shard, and answers them with its records.
        client.leaders.pop(group, None)
        assert await shard_leader(client, group, table) == target
        held = await held_read(client, target, group, table)
        pk = pk_in(cluster, group)
        await write(client, cluster, table, pk)
        reply = await answered(held)
        assert reply.ok and pks(reply) == [pk], reply
    run(cluster, scenario)
