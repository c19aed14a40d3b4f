"""kill -9 of a partition leader while a writer writes to that partition: writes resume on the
new leader, every acknowledged write survives, and the killed node, restarted on its RocksDB,
catches up by snapshot (its log fell behind the leader's compaction) until every replica of every
group has the same digest."""
from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Awaitable, Callable

import pytest

from dynalab import layout
from tests.cluster_node.harness import (SCHEMA, NodeCluster, StorageClient, all_groups,
                                        assert_replicas_agree, create_table, get_body, item,
                                        key_of, put_body, range_body, running_cluster, wait_until)

pytestmark = pytest.mark.cluster

COMPACT_AFTER = 50  # entries; the writes after the kill outrun it, forcing a snapshot install
WRITES_BEFORE_KILL = 100
WRITES_AFTER_RESUME = 3 * COMPACT_AFTER
FAILOVER_BOUND_S = 10.0  # election timeout is 1-2 s at the default 100 ms ticks


class Writer:
    """Sequential unconditional puts of distinct items (so a retry after a lost answer is safe),
    each acknowledged one recorded with the time and the node that acknowledged it."""

    def __init__(self, client: StorageClient, table: str, group: str, prefix: str = "fo") -> None:
        self.client, self.table, self.group = client, table, group
        self.prefix = prefix  # the partition key of every item (so all land in `group`)
        self.acked: dict[int, tuple[float, str]] = {}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        for i in range(1, 100_000):  # bounded; stopped long before
            if self.stop.is_set():
                return
            body = put_body(self.table, item(self.prefix, i, v=f"v{i}"))
            node, reply = await self.client.call_leader(self.group, "Write", body, deadline_s=20)
            assert reply.ok, reply
            self.acked[i] = (time.monotonic(), node)

    def acked_after(self, t: float, by_other_than: str = "") -> list[tuple[float, str]]:
        return sorted(v for v in self.acked.values() if v[0] > t and v[1] != by_other_than)


async def stored_items(client: StorageClient, table: str, group: str,
                       cluster: NodeCluster, pk: str = "fo") -> dict[int, str]:
    """sk -> v of the partition's items, read with consistent Range pages from the leader."""
    part = next(p for p in cluster.pmap.partitions if p.id == group)
    out: dict[int, str] = {}
    for key_range in layout.token_ranges(table, part.start, part.end):
        low = key_range.low
        for _ in range(1000):  # bounded pages
            _, reply = await client.call_leader(group, "Range", range_body(
                table, low, key_range.high, consistent=True, limit=200))
            page = reply.json()
            out.update({int(it["sk"]["N"]): it["v"]["S"] for _, it in page["Items"]
                        if "v" in it and it["pk"]["S"] == pk})
            if not page["more"]:
                break
            low = base64.b64decode(page["Items"][-1][0]) + b"\x00"
    return out


def test_leader_kill_fails_over_and_the_node_rejoins(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_cluster(tmp_path, "--compact-after-entries",
                                   str(COMPACT_AFTER)) as (cluster, client):
            table = await create_table(client, "fo")
            probe = item("fo", 0)
            group = cluster.partition_of(probe, SCHEMA).id
            victim, reply = await client.call_leader(group, "Write", put_body(table, probe))
            assert reply.ok

            writer = Writer(client, table, group)
            task = asyncio.create_task(writer.run())

            async def progressed(count: int, after: float = 0.0, other_than: str = "") -> bool:
                if task.done():
                    task.result()  # a failed writer fails the test now
                return len(writer.acked_after(after, other_than)) >= count
            await wait_until(lambda: progressed(WRITES_BEFORE_KILL), 30, "writes before the kill")
            assert {node for _, node in writer.acked.values()} == {victim}

            killed_at = time.monotonic()
            cluster.kill9(victim)
            # (An answer the victim sent just before dying may be taken in just after: the
            # writer is sequential, so at most one such ack.)
            await wait_until(lambda: progressed(1, killed_at, victim), FAILOVER_BOUND_S,
                             "the first write acknowledged by a new leader")
            first_at, new_leader = writer.acked_after(killed_at, victim)[0]
            assert len(writer.acked_after(killed_at)) - len(writer.acked_after(
                killed_at, victim)) <= 1
            failover_ms = (first_at - killed_at) * 1000
            print(f"\nFAILOVER_MS={failover_ms:.0f} (kill -9 {victim} -> first write acked by "
                  f"{new_leader})")
            await wait_until(lambda: progressed(WRITES_AFTER_RESUME, first_at), 60,
                             "writes on the new leader")
            writer.stop.set()
            await asyncio.wait_for(task, 30)

            # Every acknowledged write is there, read linearizably from the new leader.
            stored = await stored_items(client, table, group, cluster)
            missing = [i for i in writer.acked if stored.get(i) != f"v{i}"]
            assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:10]}"
            for i in list(writer.acked)[::50]:  # and through Get, on a sample
                _, reply = await client.call_leader(group, "Get", get_body(
                    table, key_of(item("fo", i)), True))
                assert reply.json()["Item"]["v"] == {"S": f"v{i}"}

            # The killed node comes back on its RocksDB and catches up.
            restarted_at = time.monotonic()
            cluster.start(victim)
            await cluster.wait_serving(victim)
            serving_at = time.monotonic()
            await assert_replicas_agree(client, all_groups(cluster), timeout_s=30)
            print(f"REJOIN_MS serving {(serving_at - restarted_at) * 1000:.0f}, all digests equal "
                  f"{(time.monotonic() - restarted_at) * 1000:.0f}")
            log = cluster.log_path(victim).read_text()
            assert f"group {group}: restored" in log  # by snapshot: the log was compacted
            reply = await client.call(victim, "Get", group, get_body(
                table, key_of(item("fo", max(writer.acked))), False))
            assert reply.json()["Item"]["v"] == {"S": f"v{max(writer.acked)}"}
    asyncio.run(asyncio.wait_for(scenario(), 150))


@pytest.mark.soak
def test_repeated_leader_kills_across_groups(tmp_path: Path) -> None:
    """Five rounds: kill -9 the leader of a different group each time (the meta group's too)
    while writers write to two partitions; restart; every replica of every group converges and
    every acknowledged write is there."""
    async def scenario() -> None:
        async with running_cluster(tmp_path, "--compact-after-entries",
                                   str(COMPACT_AFTER)) as (cluster, client):
            table = await create_table(client, "soak")
            writers = [Writer(client, table, cluster.partition_of(item(pk, 0), SCHEMA).id, pk)
                       for pk in ("fo", "x1")]
            groups = [w.group for w in writers]
            tasks = [asyncio.create_task(w.run()) for w in writers]
            targets = [groups[0], "meta", groups[1], groups[0], "meta"]
            for round_, group in enumerate(targets):
                op, body = (("Meta", {"op": "Catalog"}) if group == "meta" else
                            ("Get", get_body(table, key_of(item("fo", 0)), True)))
                victim, _ = await client.call_leader(group, op, body)
                counts = [len(w.acked) for w in writers]
                cluster.kill9(victim)
                await wait_until(_all_progressed(writers, counts, tasks, 100), 30,
                                 f"round {round_}: writes after killing {victim}")
                cluster.start(victim)
                await cluster.wait_serving(victim)
            for w in writers:
                w.stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            await assert_replicas_agree(client, all_groups(cluster), timeout_s=60)
            for w in writers:
                stored = await stored_items(client, table, w.group, cluster, w.prefix)
                assert all(stored.get(i) == f"v{i}" for i in w.acked)
    asyncio.run(asyncio.wait_for(scenario(), 600))


def _all_progressed(writers: list[Writer], counts: list[int], tasks: list[asyncio.Task[None]],
                    more: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        for task in tasks:
            if task.done():
                task.result()
        return all(len(w.acked) >= c + more for w, c in zip(writers, counts))
    return check
