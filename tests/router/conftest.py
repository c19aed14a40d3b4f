"""A router on 127.0.0.1 (router.server, its own event loop in a thread) wired to a FakeCluster,
and a boto3 client pointed at it. boto3 is synchronous, so the tests drive it from the main thread
while the router serves from its loop thread; anything that touches the FakeCluster goes through
`harness.on_loop` so that only the loop thread ever does."""
from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any, Callable, Iterator, TypeVar

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config

from dynalab.errors import DynalabError
from dynalab.topology import AZ, NodeSpec, Region, RouterSpec, Topology
from router.app import Router, RouterConfig
from router.catalog import WatchConfig
from router.routing import RetryConfig
from router.server import HttpServer
from tests.router.fake_cluster import FakeCluster

T = TypeVar("T")
REGION = "us-east-1"
AZS = ("use1-az1", "use1-az2", "use1-az3")
FAST = RouterConfig(create_delay_ms=10, housekeeping_ms=200,
                    catalog_watch=WatchConfig(wait_ms=2000, margin_ms=500, min_interval_ms=200,
                                              backoff_ms=(20, 200)),
                    retry=RetryConfig(deadline_ms=600, attempt_timeout_ms=300, max_attempts=8,
                                      backoff_ms=(5, 40)))
_names = itertools.count()


def make_topology(nodes_per_az: int = 2, vnodes: int = 4) -> Topology:
    azs = tuple(AZ(az, tuple(NodeSpec(f"n{i}{j}", REGION, az, grpc_port=7000 + 10 * i + j)
                             for j in range(nodes_per_az))) for i, az in enumerate(AZS))
    router = RouterSpec("r1", REGION, AZS[0], http_port=8000)
    return Topology((Region(REGION, azs, (router,)),), vnodes=vnodes)


class Harness:
    def __init__(self, config: RouterConfig = FAST) -> None:
        self.topology = make_topology()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.cluster = FakeCluster(self.topology, REGION)
        self.router = Router(self.cluster, self.topology, REGION, AZS[0], config)
        self.port = self.run(self._start())

    async def _start(self) -> int:
        await self.router.start(wait_ms=5000)
        self.server = HttpServer(self.router)
        return await self.server.start("127.0.0.1", 0)

    def run(self, coroutine: Any, timeout_s: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def on_loop(self, fn: Callable[[], T]) -> T:
        async def call() -> T:
            return fn()
        return self.run(call())

    def close(self) -> None:
        async def stop() -> None:
            await self.server.close()
            await self.router.stop()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> BaseClient:
        return boto3.client("dynamodb", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                            config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                          connect_timeout=5, read_timeout=20))


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="module")
def ddb(harness: Harness) -> BaseClient:
    return harness.client()


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{next(_names)}"


def wait_active(ddb: BaseClient, name: str) -> dict[str, Any]:
    """Poll DescribeTable until ACTIVE (bounded: the test router activates after 10 ms)."""
    for _ in range(200):
        table = ddb.describe_table(TableName=name)["Table"]
        if table["TableStatus"] == "ACTIVE":
            return table
        threading.Event().wait(0.01)
    raise AssertionError(f"table {name} never became ACTIVE")


def wait_gone(ddb: BaseClient, name: str) -> None:
    for _ in range(300):
        if name not in ddb.list_tables()["TableNames"]:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"table {name} was never removed")


def create(ddb: BaseClient, name: str | None = None, range_key: str | None = "sk",
           hash_type: str = "S", range_type: str = "N", **extra: Any) -> str:
    """Create an on-demand table (hash `pk`, optional range key) and wait until it is ACTIVE."""
    name = name or unique()
    definitions = [{"AttributeName": "pk", "AttributeType": hash_type}]
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    if range_key is not None:
        definitions.append({"AttributeName": range_key, "AttributeType": range_type})
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    ddb.create_table(TableName=name, AttributeDefinitions=definitions, KeySchema=schema,
                     BillingMode="PAY_PER_REQUEST", **extra)
    wait_active(ddb, name)
    return name


def raw_error(harness: Harness, operation: str, body: dict[str, Any]) -> tuple[str, str]:
    """(error type, message) of a request sent straight to the router, for inputs boto3 would
    refuse to send."""
    async def call() -> tuple[str, str]:
        try:
            await harness.router.handle(operation, body)
        except DynalabError as exc:
            return exc.aws_type, exc.message
        raise AssertionError(f"{operation} succeeded")
    return harness.run(call())  # type: ignore[no-any-return]
