"""The catalog cache: epochs keep stale fetches from undoing newer changes; misses share a fetch;
the background watch takes every change, follows the meta leader, backs off, and never polls a
node that answers at once faster than its minimum interval."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable

import orjson

from router.app import Router, RouterConfig
from router.catalog import Catalog, WatchConfig
from router.nodes import Reply, StorageRequest
from router.routing import RetryConfig, Routing
from tests.router.conftest import AZS, REGION, make_topology
from tests.router.fake_cluster import FakeCluster


def entry(name: str, status: str = "ACTIVE") -> dict[str, Any]:
    return {"name": name, "id": "00" * 8, "status": status,
            "key_schema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "attribute_definitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "created_ms": 1}


class MetaStub:
    """Answers Catalog requests from `answers` in order, each after `delay_s`."""

    def __init__(self, *answers: dict[str, Any], delay_s: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay_s = delay_s
        self.requests = 0

    async def execute(self, node_id: str, request: StorageRequest, timeout_ms: int) -> Reply:
        self.requests += 1
        await asyncio.sleep(self.delay_s)
        return Reply(body=orjson.dumps(self.answers.pop(0)))

    async def close(self) -> None:
        return None


def catalog_with(stub: MetaStub) -> Catalog:
    return Catalog(Routing(stub, make_topology(), REGION, AZS[0], RetryConfig()))


def test_a_stale_catalog_does_not_undo_a_newer_entry() -> None:
    async def scenario() -> None:
        stub = MetaStub({"epoch": 4, "tables": {}},
                        {"epoch": 6, "tables": {"t": entry("t", "DELETING")}})
        catalog = catalog_with(stub)
        catalog.install_entry({"table": entry("t", "CREATING"), "epoch": 5})
        await catalog.refresh()  # epoch 4: fetched before the create, arrives after it
        assert catalog.get("t") is not None and catalog.get("t").status == "CREATING"
        await catalog.refresh()  # epoch 6: newer, wins
        assert catalog.get("t").status == "DELETING"

    asyncio.run(scenario())


def test_concurrent_misses_share_one_fetch() -> None:
    async def scenario() -> None:
        stub = MetaStub({"epoch": 1, "tables": {"t": entry("t")}}, delay_s=0.05)
        catalog = catalog_with(stub)
        found = await asyncio.gather(*(catalog.lookup("t") for _ in range(20)))
        assert all(table is not None and table.name == "t" for table in found)
        assert stub.requests == 1

    asyncio.run(scenario())


def test_catalog_answers_as_a_list_are_accepted_and_deleted_entries_dropped() -> None:
    async def scenario() -> None:
        stub = MetaStub({"tables": [entry("a"), entry("b", "DELETED")]})
        catalog = catalog_with(stub)
        await catalog.refresh()
        assert catalog.names() == ["a"]
        assert catalog.get("a").schema.hash_name == "pk"

    asyncio.run(scenario())


# ----------------------------------------------------------------------- the background watch

WATCH = WatchConfig(wait_ms=300, margin_ms=200, min_interval_ms=50, backoff_ms=(10, 80))
# An attempt timeout far shorter than the wait: the watch must bring its own.
SHORT_ATTEMPTS = RetryConfig(deadline_ms=150, attempt_timeout_ms=100, max_attempts=4,
                             backoff_ms=(1, 10))


class Recorder:
    """A transport in front of another that keeps every Meta request body and its reply."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.meta: list[tuple[str, dict[str, Any], Reply]] = []

    async def execute(self, node_id: str, request: StorageRequest, timeout_ms: int) -> Reply:
        reply = await self.inner.execute(node_id, request, timeout_ms)
        if request.operation == "Meta":
            self.meta.append((node_id, orjson.loads(request.body), reply))
        return reply

    async def close(self) -> None:
        return None


async def until(check: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def watched(transport: Any) -> Catalog:
    return Catalog(Routing(transport, make_topology(), REGION, AZS[0], SHORT_ATTEMPTS), WATCH)


@contextlib.asynccontextmanager
async def running(catalog: Catalog) -> AsyncIterator[Catalog]:
    """`catalog` with its background watch running; cancelled on the way out."""
    task = asyncio.create_task(catalog.run())
    try:
        yield catalog
    finally:
        task.cancel()


def add_entry(cluster: FakeCluster, name: str, status: str = "ACTIVE") -> None:
    cluster.catalog[name] = entry(name, status)
    cluster.epoch += 1


def test_the_watch_takes_each_change_and_is_held_while_nothing_changes() -> None:
    async def scenario() -> None:
        cluster = FakeCluster(make_topology(), REGION)
        recorder = Recorder(cluster)
        async with running(watched(recorder)) as catalog:
            await until(lambda: catalog.fetched, "the first catalog")
            add_entry(cluster, "t")
            await until(lambda: catalog.get("t") is not None, "the change")
            seen = len(recorder.meta)
            await until(lambda: len(recorder.meta) >= seen + 2, "two waits that end unchanged")
        bodies = [body for _, body, _ in recorder.meta]
        assert all(b["op"] == "Catalog" and b["wait_ms"] == WATCH.wait_ms for b in bodies)
        assert bodies[0]["after_epoch"] == -1 and bodies[-1]["after_epoch"] == cluster.epoch
        # Every wait was answered (none timed out in the transport: the attempt covers it).
        assert all(reply.ok for _, _, reply in recorder.meta), recorder.meta

    asyncio.run(scenario())


def test_a_held_watch_follows_the_meta_group_to_its_new_leader() -> None:
    async def scenario() -> None:
        cluster = FakeCluster(make_topology(), REGION)
        recorder = Recorder(cluster)
        async with running(watched(recorder)) as catalog:
            await until(lambda: catalog.fetched, "the first catalog")
            old = cluster.leaders["meta"]
            new = next(n for n in cluster.groups["meta"].replicas if n != old)
            await until(lambda: len(recorder.meta) >= 2, "a watch to be held")
            cluster.leaders["meta"] = new
            await until(lambda: any(r.error_type == "NotLeader" for _, _, r in recorder.meta),
                        "the held watch to answer NotLeader")
            add_entry(cluster, "moved")
            await until(lambda: catalog.get("moved") is not None, "the change, via the new leader")
            assert recorder.meta[-1][0] == new

    asyncio.run(scenario())


def test_a_failing_meta_group_is_retried_after_a_bounded_backoff() -> None:
    async def scenario() -> None:
        cluster = FakeCluster(make_topology(), REGION)
        cluster.unavailable_groups.add("meta")
        recorder = Recorder(cluster)
        async with running(watched(recorder)) as catalog:
            await until(lambda: len(recorder.meta) >= 3 * SHORT_ATTEMPTS.max_attempts,
                        "three failed watches")
            assert not catalog.fetched
            cluster.unavailable_groups.discard("meta")
            add_entry(cluster, "back")
            await until(lambda: catalog.get("back") is not None, "the catalog once meta is back")

    asyncio.run(scenario())


def test_a_node_that_answers_watches_at_once_is_polled_at_most_every_min_interval() -> None:
    """An older node ignores after_epoch and answers an unchanged catalog at once."""
    async def scenario() -> None:
        stub = Unchanging({"epoch": 3, "tables": {"t": entry("t")}})
        async with running(watched(stub)) as catalog:
            await until(lambda: len(stub.times) >= 4, "four calls")
        assert catalog.get("t") is not None
        gaps = [b - a for a, b in zip(stub.times[1:], stub.times[2:])]  # after the first change
        assert all(gap >= WATCH.min_interval_ms / 1000 - 0.01 for gap in gaps), gaps

    asyncio.run(scenario())


class Unchanging:
    """A meta leader that answers every Catalog at once with the same answer."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.times: list[float] = []

    async def execute(self, node_id: str, request: StorageRequest, timeout_ms: int) -> Reply:
        self.times.append(asyncio.get_running_loop().time())
        return Reply(body=orjson.dumps(self.answer))

    async def close(self) -> None:
        return None


def test_housekeeping_runs_on_its_own_timer_while_the_watch_is_held() -> None:
    """A table left CREATING by a router that died is finished by another router, although its
    catalog entry does not change (so the watch answers nothing meanwhile)."""
    async def scenario() -> None:
        cluster = FakeCluster(make_topology(), REGION)
        config = RouterConfig(housekeeping_ms=50, stuck_creating_ms=200,
                              catalog_watch=WatchConfig(wait_ms=60_000))
        router = Router(cluster, make_topology(), REGION, AZS[0], config)
        await router.start(wait_ms=5000)
        try:
            add_entry(cluster, "orphan", status="CREATING")
            await until(lambda: cluster.catalog["orphan"]["status"] == "ACTIVE",
                        "housekeeping to finish the CreateTable")
        finally:
            await router.stop()

    asyncio.run(scenario())
