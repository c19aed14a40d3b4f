"""Catalog watches (`Meta Catalog` with `after_epoch`, docs/cluster.md "Metadata") on three real
`python -m node` processes, and a router's watch loop against them: answered as soon as a change
is applied, at the end of the wait otherwise, NotLeader when the meta group moves; held without
holding up the requests behind it, and without keeping the meta group awake.

Every wait is for a condition with a deadline. Watches that must be answered by a change ask to
be held far longer (LONG_MS) than the test waits for them, so an answer at the end of the wait
could not pass for one."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest

from router.app import Router, RouterConfig
from router.catalog import WatchConfig
from router.nodes import GrpcTransport
from tests.cluster_node.harness import (NODE_IDS, NodeCluster, REGION, Reply, StorageClient,
                                        TABLE_DEF, execute_stat, held_call, run_scenario,
                                        running_cluster, serving_cluster, wait_until)

pytestmark = pytest.mark.cluster

LONG_MS = 60_000  # the most a node holds a watch (ServiceConfig.max_watch_ms)
CHANGE_BOUND_S = 10.0  # a held watch answers a change well within this


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    with serving_cluster(tmp_path_factory.mktemp("nodes"), vnodes=2) as nodes:
        yield nodes


def run(cluster: NodeCluster, scenario: Callable[[StorageClient], Awaitable[None]],
        timeout_s: float = 90) -> None:
    run_scenario(cluster, scenario, timeout_s)


def watch_body(after_epoch: Any, wait_ms: Any = LONG_MS) -> dict[str, Any]:
    return {"op": "Catalog", "after_epoch": after_epoch, "wait_ms": wait_ms}


async def meta_state(client: StorageClient) -> tuple[str, int]:
    """(meta leader, catalog epoch), read linearizably."""
    leader, reply = await client.call_leader("meta", "Meta", {"op": "Catalog"})
    assert reply.ok, reply
    return leader, int(reply.json()["epoch"])


async def held_watch(client: StorageClient, node: str, after_epoch: int,
                     wait_ms: int = LONG_MS) -> asyncio.Task[Reply]:
    return await held_call(client, node, "Meta", "meta", watch_body(after_epoch, wait_ms), wait_ms)


async def watches_on(client: StorageClient, node: str) -> int:
    return await execute_stat(client, node, "catalog_watches")


async def answered(task: asyncio.Task[Reply]) -> Reply:
    await wait_until(lambda: _done(task), CHANGE_BOUND_S, "the watch to be answered")
    return task.result()


async def _done(task: asyncio.Task[Reply]) -> bool:
    return task.done()


def test_a_held_watch_answers_each_change_and_does_not_hold_up_the_stream(
        cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        leader, epoch = await meta_state(client)
        held = await held_watch(client, leader, epoch)
        # Requests sent after the watch on the same stream are answered while it is held: the
        # node has it (it arrived first) and serves the others meanwhile.
        stats = await client.call(leader, "Stats", "", {})
        plain = await client.call(leader, "Meta", "meta", {"op": "Catalog"})
        assert stats.ok and plain.ok and plain.json()["epoch"] == epoch
        assert stats.json()["execute"]["catalog_watches"] >= 1 and not held.done()

        _, created = await client.call_leader("meta", "Meta", {"op": "CreateTable", **TABLE_DEF,
                                                               "name": "watched"})
        assert created.ok, created
        reply = await answered(held)
        assert reply.ok, reply
        body = reply.json()
        assert body["epoch"] == created.json()["epoch"] > epoch
        assert body["tables"]["watched"]["status"] == "CREATING"

        table_id = created.json()["table"]["id"]
        held = await held_watch(client, leader, body["epoch"])
        assert (await client.call(leader, "Stats", "", {})).ok and not held.done()
        _, updated = await client.call_leader("meta", "Meta", {
            "op": "UpdateTable", "name": "watched", "id": table_id, "settings": {"k": "v"}})
        assert updated.ok, updated
        reply = await answered(held)
        assert reply.ok and reply.json()["tables"]["watched"]["settings"]["k"] == "v"
        assert await watches_on(client, leader) == 0
        # Not left CREATING: a router's housekeeping would finish it (a meta write) later on.
        _, dropped = await client.call_leader("meta", "Meta", {
            "op": "SetStatus", "name": "watched", "id": table_id, "status": "DELETED"})
        assert dropped.ok, dropped
    run(cluster, scenario)


def test_a_watch_is_answered_at_the_end_of_its_wait_and_a_newer_epoch_at_once(
        cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        leader, epoch = await meta_state(client)
        reply = await client.call(leader, "Meta", "meta", watch_body(epoch, 300), timeout_s=10)
        assert reply.ok and reply.json()["epoch"] == epoch  # unchanged, read linearizably
        reply = await client.call(leader, "Meta", "meta", watch_body(epoch - 1), timeout_s=10)
        assert reply.ok and reply.json()["epoch"] == epoch  # already newer: no wait
        reply = await client.call(leader, "Meta", "meta", watch_body(-1), timeout_s=10)
        assert reply.ok and reply.json()["epoch"] == epoch  # a router's first watch
    run(cluster, scenario)


def test_watches_the_node_cannot_hold(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        leader, epoch = await meta_state(client)
        follower = next(n for n in NODE_IDS if n != leader)
        reply = await client.call(follower, "Meta", "meta", watch_body(epoch), timeout_s=10)
        assert (reply.error_type, reply.leader_hint) == ("NotLeader", leader)
        for bad in (watch_body("3"), watch_body(True), watch_body(epoch, LONG_MS + 1),
                    watch_body(epoch, -5)):
            reply = await client.call(leader, "Meta", "meta", bad, timeout_s=10)
            assert reply.error_type == "ValidationException", (bad, reply)
    run(cluster, scenario)


def test_a_closed_stream_leaves_no_watch_behind(cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        leader, epoch = await meta_state(client)
        other = StorageClient({leader: cluster.address(leader)})
        try:
            held = await held_watch(other, leader, epoch)

            async def holding(count: int) -> bool:
                return await watches_on(client, leader) == count
            await wait_until(lambda: holding(1), 10, "the watch to be held")
            await other.close()  # the stream is cancelled with the watch on it
            await wait_until(lambda: holding(0), 10, "the node to drop the watch")
            assert held.done() and not held.result().ok
        finally:
            await other.close()
    run(cluster, scenario)


def test_a_held_watch_answers_not_leader_when_the_meta_group_moves(
        cluster: NodeCluster) -> None:
    async def scenario(client: StorageClient) -> None:
        leader, epoch = await meta_state(client)
        target = next(n for n in NODE_IDS if n != leader)
        held = await held_watch(client, leader, epoch)
        assert (await client.call(leader, "Stats", "", {})).ok and not held.done()
        moved = await client.call(leader, "TransferLeader", "meta", {"to": target})
        assert moved.ok, moved
        reply = await answered(held)
        assert (reply.error_type, reply.leader_hint) == ("NotLeader", target), reply
        client.leaders.pop("meta", None)
        now, _ = await meta_state(client)
        assert now == target
    run(cluster, scenario)


# ------------------------------------------------------------------------- a router's watch

@contextlib.asynccontextmanager
async def router_on(cluster: NodeCluster, wait_ms: int,
                    margin_ms: int = 5_000) -> AsyncIterator[Router]:
    config = RouterConfig(catalog_watch=WatchConfig(wait_ms=wait_ms, margin_ms=margin_ms))
    transport = GrpcTransport({n: cluster.address(n) for n in NODE_IDS})
    router = Router(transport, cluster.topology, REGION, cluster.topology.node("n1").az, config)
    await router.start(wait_ms=20_000)
    assert router.catalog.fetched
    try:
        yield router
    finally:
        await router.stop()


async def node_stats(client: StorageClient) -> dict[str, dict[str, Any]]:
    stats = {}
    for node in NODE_IDS:
        reply = await client.call(node, "Stats", "", {})
        assert reply.ok, reply
        stats[node] = reply.json()
    return stats


def all_parked(stats: dict[str, dict[str, Any]]) -> bool:
    return all(s["driver"]["quiesced_groups"] == len(s["leaders"]) for s in stats.values())


def test_the_meta_group_quiesces_while_a_router_watches(cluster: NodeCluster) -> None:
    """With a poll every second, the catalog reads kept the meta leader's lease, and so its
    heartbeats, alive; a held watch costs the group nothing."""
    async def scenario(client: StorageClient) -> None:
        async with router_on(cluster, wait_ms=LONG_MS) as router:
            leader, _ = await meta_state(client)
            assert not router.catalog.tables()  # nothing for housekeeping to finish

            async def watching_and_parked() -> bool:
                stats = await node_stats(client)
                return stats[leader]["execute"]["catalog_watches"] >= 1 and all_parked(stats)
            await wait_until(watching_and_parked, 30, "every group parked, the watch held")
            before = (await node_stats(client))[leader]["driver"]

            async def ticked(ticks: int) -> bool:
                now = (await node_stats(client))[leader]["driver"]
                return bool(now["ticks"] >= before["ticks"] + ticks)
            await wait_until(lambda: ticked(12), 30, "12 ticks of the meta leader (3 s)",
                             interval_s=0.5)
            stats = await node_stats(client)
            assert all_parked(stats), {n: (s["driver"]["quiesced_groups"], len(s["leaders"]),
                                           s["driver"]["groups_woken"])
                                       for n, s in stats.items()}
            # No group of the meta leader was woken while the router's watch was held.
            assert stats[leader]["driver"]["groups_woken"] == before["groups_woken"]
            assert stats[leader]["execute"]["catalog_watches"] >= 1

            # And the watch still follows a change made elsewhere at once.
            _, created = await client.call_leader("meta", "Meta", {
                "op": "CreateTable", **TABLE_DEF, "name": "seen-by-router"})
            assert created.ok, created

            async def router_sees() -> bool:
                return router.catalog.get("seen-by-router") is not None
            await wait_until(router_sees, CHANGE_BOUND_S, "the router to see the new table")
    run(cluster, scenario)


def test_a_routers_watch_survives_a_paused_and_a_killed_meta_leader(tmp_path: Path) -> None:
    """SIGSTOP: the paused leader's stream stays open; the router gives up on it when the
    watch's wait plus margin is over, and finds the new leader. kill -9: the stream breaks at
    once. Either way the router's catalog gets the table created on the new leader."""
    wait_ms, margin_ms = 2_000, 1_000

    async def scenario() -> None:
        async with running_cluster(tmp_path, vnodes=2) as (cluster, client):
            async with router_on(cluster, wait_ms, margin_ms) as router:
                paused, _ = await meta_state(client)
                os.killpg(cluster.procs[paused].pid, signal.SIGSTOP)
                try:
                    await create_on_new_leader(client, "after-pause", exclude=paused)
                    await wait_until(lambda: knows(router, "after-pause"),
                                     (wait_ms + margin_ms) / 1000 + 15, "the router to catch up")
                finally:
                    os.killpg(cluster.procs[paused].pid, signal.SIGCONT)

            # Held far longer than the test waits: only the broken stream and the retry that
            # follows can bring the change in time.
            async with router_on(cluster, LONG_MS) as router:
                killed, _ = await meta_state(client)
                assert router.routing.leader_of(router.routing.meta_group) == killed
                cluster.kill9(killed)
                await client.reset(killed)
                await create_on_new_leader(client, "after-kill", exclude=killed)
                await wait_until(lambda: knows(router, "after-kill"), CHANGE_BOUND_S + 10,
                                 "the router to catch up")
    asyncio.run(asyncio.wait_for(scenario(), 120))


async def knows(router: Router, name: str) -> bool:
    return router.catalog.get(name) is not None


async def create_on_new_leader(client: StorageClient, name: str, exclude: str) -> None:
    client.leaders.pop("meta", None)
    others = tuple(n for n in NODE_IDS if n != exclude)
    _, reply = await client.call_leader("meta", "Meta", {"op": "CreateTable", **TABLE_DEF,
                                                         "name": name}, replicas=others)
    assert reply.ok, reply
