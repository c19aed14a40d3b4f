"""A DynamoDB double for the experiment runner's tests: tests/bench's FakeDynamo (items in a
dict) served on its own event loop in a thread, with switches that make it misbehave the way a
broken database would:

  down          every data-plane request answers 503 (unavailability; writes become "unknown")
  stale_every   every Nth strongly consistent GetItem returns the key's previous item
  amnesia       snapshot() then restore(): writes acknowledged in between are forgotten

Faults that flip these switches are registered as fault kinds (`fake-outage`,
`fake-amnesia`), so experiments drive the double through the same schedule as a real cluster.
"""
from __future__ import annotations

import asyncio
import copy
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from chaos.faults import FaultContext, ProcessFault, register
from tests.bench.fake_dynamodb import Behaviour, ClientError, FakeDynamo

__all__ = ["FAKES", "FakeAmnesia", "FakeOutage", "RegisterFake", "serve"]

_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_DATA_PLANE = frozenset({"PutItem", "GetItem", "UpdateItem"})
FAKES: dict[str, RegisterFake] = {}  # by name, for the fault kinds below
_FAKE = web.AppKey("fake", FakeDynamo)


class RegisterFake(FakeDynamo):
    def __init__(self, stale_every: int = 0) -> None:
        super().__init__(Behaviour())
        self.down = False
        self.stale_every = stale_every
        self._strong_reads = 0
        self._previous: dict[tuple[str, tuple[str, str]], Any] = {}
        self._snapshot: dict[str, Any] | None = None

    def _remember(self, doc: dict[str, Any], key_doc: dict[str, Any]) -> None:
        table = self._table(doc)
        key = table.key(key_doc)
        self._previous[(table.name, key)] = copy.deepcopy(table.items.get(key))

    def put_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        self._remember(doc, doc["Item"])
        return super().put_item(doc)

    def update_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        self._remember(doc, doc["Key"])
        return super().update_item(doc)

    def get_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        if doc.get("ConsistentRead") and self.stale_every:
            self._strong_reads += 1
            if self._strong_reads % self.stale_every == 0:
                table = self._table(doc)
                previous = self._previous.get((table.name, table.key(doc["Key"])))
                if previous is not None:
                    return {"Item": previous}
        return super().get_item(doc)

    def snapshot(self) -> None:
        self._snapshot = {name: copy.deepcopy(t.items) for name, t in self.tables.items()}

    def restore(self) -> None:
        assert self._snapshot is not None, "restore() without snapshot()"
        for name, items in self._snapshot.items():
            self.tables[name].items = items
        self._snapshot = None


def _error(kind: str, message: str, status: int) -> web.Response:
    return web.Response(status=status, content_type="application/x-amz-json-1.0",
                        body=orjson.dumps({"__type": _PREFIX + kind, "message": message}))


async def _handle(request: web.Request) -> web.Response:
    fake = request.app[_FAKE]
    assert isinstance(fake, RegisterFake)
    operation = request.headers.get("X-Amz-Target", ".").split(".", 1)[1]
    body = await request.read()
    if fake.down and operation in _DATA_PLANE:
        return _error("ServiceUnavailable", "injected outage", 503)
    try:
        answer = fake.dispatch(operation, orjson.loads(body))
    except ClientError as error:
        return _error(error.kind, error.message, 400)
    return web.Response(body=orjson.dumps(answer), content_type="application/x-amz-json-1.0")


class serve:  # noqa: N801 - used as a context manager, like open()
    """`with serve(fake) as url:` the fake on 127.0.0.1 (a free port), on its own loop."""

    def __init__(self, fake: RegisterFake) -> None:
        self.fake = fake
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self.url = ""

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app[_FAKE] = self.fake
        app.router.add_post("/", _handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the fake did not start within 10 s")
        return self.url

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@register
@dataclass(frozen=True)
class FakeOutage(ProcessFault):
    """The named fake answers 503 to data-plane requests until undone."""

    kind = "fake-outage"
    fake: str

    def start(self, context: FaultContext) -> str:
        FAKES[self.fake].down = True
        return f"{self.fake} down"

    def stop(self, context: FaultContext) -> str:
        FAKES[self.fake].down = False
        return f"{self.fake} up"

    def describe(self) -> str:
        return f"outage of {self.fake}"


@register
@dataclass(frozen=True)
class FakeAmnesia(ProcessFault):
    """The named fake forgets, when undone, every write acknowledged while it was active."""

    kind = "fake-amnesia"
    fake: str

    def start(self, context: FaultContext) -> str:
        FAKES[self.fake].snapshot()
        return f"{self.fake} snapshot"

    def stop(self, context: FaultContext) -> str:
        FAKES[self.fake].restore()
        return f"{self.fake} forgot recent writes"

    def describe(self) -> str:
        return f"amnesia of {self.fake}"
