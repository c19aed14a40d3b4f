"""A small DynamoDB-shaped HTTP server for the bench tests (the thing around the thing under test).

Items live in a dict. It answers CreateTable, DescribeTable, PutItem, GetItem, UpdateItem and Query
with DynamoDB's JSON, evaluates the few condition/update expression forms the bench sends
(including the ConditionalCheckFailedException path), rejects requests whose headers are not
shaped like botocore's, and can misbehave on purpose: a delay per request, a throttling error
every Nth request, a dropped connection every Mth.

Run: python -m tests.bench.fake_dynamodb [--port 0] [--delay-ms D] [--fail-every N] [--drop-every M]
It prints "PORT <n>" once listening on 127.0.0.1. GET /_stats returns what it has seen.
--raw instead answers {} to every request (and a pk/sk table to DescribeTable) with a bare asyncio
protocol: the cheapest endpoint there is, for measuring the bench's own ceiling.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from aiohttp import web

__all__ = ["FakeDynamo", "Behaviour", "make_app", "main"]

_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/\s]+/\d{8}/[a-z0-9-]+/dynamodb/aws4_request, "
                   r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$")
_DATA_PLANE = frozenset({"PutItem", "GetItem", "UpdateItem", "Query"})
Item = dict[str, dict[str, str]]


class ClientError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass(frozen=True)
class Behaviour:
    delay_s: float = 0.0
    fail_every: int = 0  # every Nth data-plane request: ProvisionedThroughputExceededException
    drop_every: int = 0  # every Mth data-plane request: close the connection, no response


@dataclass
class Table:
    name: str
    hash_name: str
    range_name: str | None
    items: dict[tuple[str, str], Item] = field(default_factory=dict)
    described: bool = False  # CREATING until the first DescribeTable, then ACTIVE

    def key(self, key: Item) -> tuple[str, str]:
        try:
            pk = key[self.hash_name]["S"]
            sk = key[self.range_name]["S"] if self.range_name else ""
        except KeyError as exc:
            raise ClientError("ValidationException", f"key is missing {exc}") from exc
        return pk, sk

    def description(self) -> dict[str, Any]:
        keys = [(self.hash_name, "HASH")]
        if self.range_name:
            keys.append((self.range_name, "RANGE"))
        return {"TableName": self.name, "TableStatus": "ACTIVE" if self.described else "CREATING",
                "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in keys],
                "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"}
                                         for n, _ in keys],
                "ItemCount": len(self.items)}


def _resolve(token: str, doc: dict[str, Any]) -> str:
    return doc.get("ExpressionAttributeNames", {}).get(token, token)


def _value(token: str, doc: dict[str, Any]) -> dict[str, str]:
    try:
        return doc["ExpressionAttributeValues"][token]
    except KeyError as exc:
        raise ClientError("ValidationException", f"no value for {token}") from exc


def _check_condition(item: Item | None, doc: dict[str, Any]) -> None:
    condition = doc.get("ConditionExpression")
    if condition is None:
        return
    absent = re.fullmatch(r"attribute_not_exists\((\S+)\)", condition)
    equal = re.fullmatch(r"(\S+) = (:\w+)", condition)
    if absent:
        holds = item is None or _resolve(absent.group(1), doc) not in item
    elif equal:
        name, token = _resolve(equal.group(1), doc), equal.group(2)
        holds = item is not None and item.get(name) == _value(token, doc)
    else:
        raise ClientError("ValidationException", f"unsupported condition {condition!r}")
    if not holds:
        raise ClientError("ConditionalCheckFailedException", "The conditional request failed")


def _apply_update(item: Item, doc: dict[str, Any]) -> None:
    expression = doc.get("UpdateExpression", "")
    for verb, body in re.findall(r"(SET|ADD)\s+(.*?)(?=\s+(?:SET|ADD)\s+|$)", expression):
        for clause in (c.strip() for c in body.split(",")):
            if verb == "SET":
                name, _, token = (p.strip() for p in clause.partition("="))
                item[_resolve(name, doc)] = _value(token, doc)
            else:
                name, token = clause.split()
                current = int(item.get(_resolve(name, doc), {"N": "0"})["N"])
                item[_resolve(name, doc)] = {"N": str(current + int(_value(token, doc)["N"]))}


class FakeDynamo:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.tables: dict[str, Table] = {}
        self.requests: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.succeeded: Counter[str] = Counter()  # by operation
        self.failed: Counter[str] = Counter()  # by error type
        self._data_plane_seen = 0

    def _table(self, doc: dict[str, Any]) -> Table:
        table = self.tables.get(doc.get("TableName", ""))
        if table is None:
            raise ClientError("ResourceNotFoundException", "Requested resource not found")
        return table

    def create_table(self, doc: dict[str, Any]) -> dict[str, Any]:
        if doc["TableName"] in self.tables:
            raise ClientError("ResourceInUseException", "Table already exists")
        names = {k["KeyType"]: k["AttributeName"] for k in doc["KeySchema"]}
        table = Table(doc["TableName"], names["HASH"], names.get("RANGE"))
        self.tables[table.name] = table
        return {"TableDescription": table.description()}

    def describe_table(self, doc: dict[str, Any]) -> dict[str, Any]:
        table = self._table(doc)
        answer = {"Table": table.description()}
        table.described = True
        return answer

    def put_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        table = self._table(doc)
        key = table.key(doc["Item"])
        _check_condition(table.items.get(key), doc)
        table.items[key] = doc["Item"]
        return {}

    def get_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        table = self._table(doc)
        item = table.items.get(table.key(doc["Key"]))
        return {} if item is None else {"Item": item}

    def update_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        table = self._table(doc)
        key = table.key(doc["Key"])
        current = table.items.get(key)
        _check_condition(current, doc)
        item = dict(current) if current is not None else dict(doc["Key"])
        _apply_update(item, doc)
        table.items[key] = item
        return {}

    def query(self, doc: dict[str, Any]) -> dict[str, Any]:
        table = self._table(doc)
        match = re.fullmatch(r"(\S+) = (:\w+)(?: AND (\S+) >= (:\w+))?",
                             doc["KeyConditionExpression"])
        if match is None:
            raise ClientError("ValidationException", "unsupported key condition")
        pk = _value(match.group(2), doc)["S"]
        low = _value(match.group(4), doc)["S"] if match.group(4) else ""
        keys = sorted(k for k in table.items if k[0] == pk and k[1] >= low)
        items = [table.items[k] for k in keys[:int(doc.get("Limit", len(keys)) or len(keys))]]
        return {"Items": items, "Count": len(items), "ScannedCount": len(items)}

    def dispatch(self, operation: str, doc: dict[str, Any]) -> dict[str, Any]:
        handlers = {"CreateTable": self.create_table, "DescribeTable": self.describe_table,
                    "PutItem": self.put_item, "GetItem": self.get_item,
                    "UpdateItem": self.update_item, "Query": self.query}
        if operation not in handlers:
            raise ClientError("UnknownOperationException", f"unknown operation {operation}")
        return handlers[operation](doc)

    def misbehaviour(self, operation: str) -> str | None:
        """"fail", "drop" or None for this data-plane request."""
        if operation not in _DATA_PLANE:
            return None
        self._data_plane_seen += 1
        n, b = self._data_plane_seen, self.behaviour
        if b.drop_every and n % b.drop_every == 0:
            return "drop"
        if b.fail_every and n % b.fail_every == 0:
            return "fail"
        return None


def _error(kind: str, message: str, status: int = 400) -> web.Response:
    body = orjson.dumps({"__type": _PREFIX + kind, "message": message})
    return web.Response(status=status, body=body, content_type="application/x-amz-json-1.0")


def _header_problem(request: web.Request) -> str | None:
    if request.headers.get("Content-Type") != "application/x-amz-json-1.0":
        return "bad Content-Type"
    if not request.headers.get("X-Amz-Target", "").startswith("DynamoDB_20120810."):
        return "bad X-Amz-Target"
    if not request.headers.get("X-Amz-Date"):
        return "no X-Amz-Date"
    if not _AUTH.match(request.headers.get("Authorization", "")):
        return "malformed Authorization"
    return None


async def _handle(request: web.Request) -> web.StreamResponse:
    fake: FakeDynamo = request.app["fake"]
    body = await request.read()
    problem = _header_problem(request)
    if problem:
        fake.injected["rejected_headers"] += 1
        return _error("IncompleteSignatureException", problem)
    operation = request.headers["X-Amz-Target"].split(".", 1)[1]
    fake.requests[operation] += 1
    if fake.behaviour.delay_s:
        await asyncio.sleep(fake.behaviour.delay_s)
    action = fake.misbehaviour(operation)
    if action == "drop":
        fake.injected["dropped"] += 1
        assert request.transport is not None
        request.transport.abort()  # no response at all: the client sees a disconnect
        raise web.HTTPInternalServerError()  # unreachable for the client; ends this handler
    if action == "fail":
        fake.injected["ProvisionedThroughputExceededException"] += 1
        return _error("ProvisionedThroughputExceededException", "injected throttle")
    try:
        answer = fake.dispatch(operation, orjson.loads(body))
    except ClientError as exc:
        fake.failed[exc.kind] += 1
        return _error(exc.kind, exc.message)
    fake.succeeded[operation] += 1
    return web.Response(body=orjson.dumps(answer), content_type="application/x-amz-json-1.0")


async def _stats(request: web.Request) -> web.Response:
    fake: FakeDynamo = request.app["fake"]
    return web.json_response({
        "requests": dict(fake.requests), "injected": dict(fake.injected),
        "succeeded": dict(fake.succeeded), "failed": dict(fake.failed),
        "items": {n: len(t.items) for n, t in fake.tables.items()},
        # Each successful conditional update adds one to an item's version: a checksum for F.
        "version_sum": {n: sum(int(i.get("v", {"N": "0"})["N"]) for i in t.items.values())
                        for n, t in fake.tables.items()}})


class _CannedProtocol(asyncio.Protocol):
    """--raw: the cheapest possible endpoint, to find the bench's own ceiling.

    Answers every request with 200 and an empty JSON object ({} is what GetItem returns for a
    missing item), parsing only enough HTTP/1.1 to find where each request ends.
    """

    _ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
               b"Content-Length: 2\r\n\r\n{}")
    _TABLE = orjson.dumps({"Table": Table("any", "pk", "sk", described=True).description()})
    _DESCRIBE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
                 b"Content-Length: " + str(len(_TABLE)).encode() + b"\r\n\r\n" + _TABLE)

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for _ in range(1000):  # requests in one read: bounded
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            match = re.search(rb"(?i)content-length:\s*(\d+)", self._buffer[:head_end])
            end = head_end + 4 + (int(match.group(1)) if match else 0)
            if len(self._buffer) < end:
                return
            describe = b"DescribeTable" in self._buffer[:head_end]
            self._buffer = self._buffer[end:]
            assert self._transport is not None
            self._transport.write(self._DESCRIBE if describe else self._ANSWER)


def make_app(behaviour: Behaviour) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app["fake"] = FakeDynamo(behaviour)
    app.router.add_post("/", _handle)
    app.router.add_get("/_stats", _stats)
    return app


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve_raw(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_CannedProtocol, "127.0.0.1", port,
                                                            backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await _wait_for_signal()
    server.close()


async def _serve(port: int, behaviour: Behaviour) -> None:
    runner = web.AppRunner(make_app(behaviour), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"PORT {bound}", flush=True)
    await _wait_for_signal()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fake_dynamodb")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--drop-every", type=int, default=0)
    parser.add_argument("--raw", action="store_true",
                        help="answer {} to everything, as cheaply as possible (ceiling runs)")
    args = parser.parse_args(argv)
    behaviour = Behaviour(args.delay_ms / 1000, args.fail_every, args.drop_every)
    serve = _serve_raw(args.port) if args.raw else _serve(args.port, behaviour)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve)
        return 0
    uvloop.run(serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
