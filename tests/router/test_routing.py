"""Routing's retry rules, against scripted transports and the FakeCluster (no HTTP)."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from dynalab import errors
from router.nodes import LOST, NOT_LEADER, TIMEOUT, UNAVAILABLE, Reply, StorageRequest
from router.routing import RetryConfig, Routing
from tests.router.conftest import AZS, REGION, make_topology
from tests.router.fake_cluster import FakeCluster

RETRY = RetryConfig(deadline_ms=500, attempt_timeout_ms=200, max_attempts=6, backoff_ms=(1, 8))


class Scripted:
    """Answers from a script, in order; then success."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, str]] = []

    async def execute(self, node_id: str, request: StorageRequest, timeout_ms: int) -> Reply:
        self.calls.append((node_id, request.operation))
        return self.replies.pop(0) if self.replies else Reply(body=b'{"ok": true}')

    async def close(self) -> None:
        return None


def routing_with(transport: Any) -> Routing:
    return Routing(transport, make_topology(), REGION, AZS[0], RETRY)


def first_partition(routing: Routing) -> Any:
    return routing.pmap.partitions[0]


def test_not_leader_is_retried_on_the_hinted_leader_and_remembered() -> None:
    async def scenario() -> None:
        cluster = FakeCluster(make_topology(), REGION)
        routing = Routing(cluster, cluster.topology, REGION, AZS[0], RETRY)
        group = first_partition(routing)
        cluster.not_leader_once.add(group.id)  # the first guess answers NotLeader once
        body = {"table": "00" * 8, "low": "", "high": "", "reverse": False, "limit": 1,
                "max_bytes": 1, "consistent": True}
        assert await routing.call_leader(group, "Range", body, idempotent=True) == {
            "Items": [], "more": False, "bytes": 0}
        tried = [c.node for c in cluster.calls]
        assert tried == [group.replicas[0], cluster.leaders[group.id]]
        assert routing.leader_of(group) == cluster.leaders[group.id] != group.replicas[0]
        await routing.call_leader(group, "Range", body, idempotent=True)
        assert [c.node for c in cluster.calls[2:]] == [cluster.leaders[group.id]]  # cache hit

    asyncio.run(scenario())


def test_not_leader_without_hint_tries_the_next_replica() -> None:
    async def scenario() -> None:
        transport = Scripted(Reply(error_type=NOT_LEADER), Reply(error_type=NOT_LEADER))
        routing = routing_with(transport)
        group = first_partition(routing)
        assert await routing.call_leader(group, "Write", {}, idempotent=False) == {"ok": True}
        assert [node for node, _ in transport.calls] == list(group.replicas)

    asyncio.run(scenario())


def test_unavailable_is_retried_with_backoff_within_the_deadline() -> None:
    async def scenario() -> None:
        transport = Scripted(*[Reply(error_type=UNAVAILABLE)] * 3)
        routing = routing_with(transport)
        assert await routing.call_leader(first_partition(routing), "Write", {},
                                         idempotent=False) == {"ok": True}
        assert len(transport.calls) == 4

    asyncio.run(scenario())


def test_retries_are_bounded_by_attempts_and_deadline() -> None:
    async def scenario() -> None:
        transport = Scripted(*[Reply(error_type=UNAVAILABLE)] * 100)
        routing = routing_with(transport)
        started = time.monotonic()
        with pytest.raises(errors.Unavailable):
            await routing.call_leader(first_partition(routing), "Write", {}, idempotent=False)
        assert len(transport.calls) <= RETRY.max_attempts
        assert time.monotonic() - started < RETRY.deadline_ms / 1000 + 0.5

    asyncio.run(scenario())


@pytest.mark.parametrize("failure", [LOST, TIMEOUT])
def test_an_uncertain_write_is_not_repeated(failure: str) -> None:
    async def scenario() -> None:
        transport = Scripted(Reply(error_type=failure))
        routing = routing_with(transport)
        with pytest.raises(errors.ServerError, match="outcome of the request is unknown"):
            await routing.call_leader(first_partition(routing), "Write", {}, idempotent=False)
        assert len(transport.calls) == 1
        # An idempotent request (a read, a BatchWrite) is simply retried.
        transport.replies = [Reply(error_type=failure)]
        assert await routing.call_leader(first_partition(routing), "Get", {}, idempotent=True)

    asyncio.run(scenario())


def test_node_errors_become_dynalab_errors() -> None:
    async def scenario() -> None:
        item = {"pk": {"S": "a"}}
        transport = Scripted(
            Reply(error_type="ValidationException", error_message="bad arithmetic"),
            Reply(body=orjson.dumps({"Item": item}), error_type="ConditionalCheckFailedException",
                  error_message="The conditional request failed"),
            Reply(error_type="SomethingOdd", error_message="?"))
        routing = routing_with(transport)
        group = first_partition(routing)
        with pytest.raises(errors.ValidationException, match="bad arithmetic"):
            await routing.call_leader(group, "Write", {}, idempotent=False)
        with pytest.raises(errors.ConditionalCheckFailedException) as ccf:
            await routing.call_leader(group, "Write", {}, idempotent=False)
        assert ccf.value.item == item
        with pytest.raises(errors.ServerError):
            await routing.call_leader(group, "Write", {}, idempotent=False)

    asyncio.run(scenario())


def test_replica_reads_go_local_first_then_around() -> None:
    async def scenario() -> None:
        transport = Scripted(Reply(error_type=UNAVAILABLE), Reply(error_type=LOST))
        routing = routing_with(transport)
        group = first_partition(routing)
        assert await routing.call_replica(group, "Get", {}) == {"ok": True}
        tried = [node for node, _ in transport.calls]
        assert routing.topology.az_of(tried[0]) == AZS[0]
        assert sorted(tried) == sorted(group.replicas)  # each replica once, local first

    asyncio.run(scenario())


def test_meta_calls_go_to_the_meta_group_voters() -> None:
    async def scenario() -> None:
        transport = Scripted()
        routing = routing_with(transport)
        await routing.meta({"op": "Catalog"})
        assert transport.calls == [("n00", "Meta")]
        assert routing.meta_group.replicas == ("n00", "n10", "n20")

    asyncio.run(scenario())


def test_a_replica_that_failed_is_tried_last_for_a_while() -> None:
    async def scenario() -> None:
        transport = Scripted(Reply(error_type=TIMEOUT))
        routing = routing_with(transport)
        group = first_partition(routing)
        await routing.call_replica(group, "Get", {})
        local = transport.calls[0][0]
        assert routing.topology.az_of(local) == AZS[0]
        transport.calls.clear()
        await routing.call_replica(group, "Get", {})
        assert transport.calls[0][0] != local  # the suspect local replica waits its turn

    asyncio.run(scenario())
