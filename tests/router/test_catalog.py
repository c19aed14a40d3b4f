"""The catalog cache: epochs keep stale fetches from undoing newer changes; misses share a fetch."""
from __future__ import annotations

import asyncio
from typing import Any

import orjson

from router.catalog import Catalog
from router.nodes import Reply, StorageRequest
from router.routing import RetryConfig, Routing
from tests.router.conftest import AZS, REGION, make_topology


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
