"""The HTTP/1.1 layer of router.server on raw sockets: persistent connections, pipelining, body
framing (Content-Length, chunked, Expect: 100-continue), limits and malformed input. Each test
runs under both asyncio's own loop and uvloop (the router process uses uvloop)."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import zlib
from typing import Any, Iterator

import pytest

from router.app import Router
from router.server import HttpServer
from tests.router.conftest import AZS, FAST, REGION, make_topology
from tests.router.fake_cluster import FakeCluster

AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abcdef0123")
MAX_BODY = 4096
MAX_HEAD = 2048
TIMEOUT_S = 10


class Server:
    """A router with a small body and head limit, serving from its own loop thread."""

    def __init__(self, loop_kind: str) -> None:
        if loop_kind == "uvloop":
            uvloop = pytest.importorskip("uvloop")
            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        topology = make_topology()
        self.router = Router(FakeCluster(topology, REGION), topology, REGION, AZS[0], FAST)
        self.server = HttpServer(self.router, max_body_bytes=MAX_BODY, max_head_bytes=MAX_HEAD)
        self.port = self.run(self._start())

    async def _start(self) -> int:
        await self.router.start(wait_ms=5000)
        return await self.server.start("127.0.0.1", 0)

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT_S)

    def add_operation(self, name: str, operation: Any) -> None:
        async def add() -> None:
            self.router._operations[name] = operation
        self.run(add())

    def connections(self) -> int:
        async def count() -> int:
            return len(self.server.connections)
        return int(self.run(count()))

    def close(self) -> None:
        async def stop() -> None:
            await self.server.close(grace_s=2)
            await self.router.stop()
        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    s = Server(request.param)
    try:
        yield s
    finally:
        s.close()


class Client:
    """One connection; reads whole responses (status, lower-cased headers, body)."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S)
        self.buffer = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        for _ in range(10_000):  # bounded; each recv waits at most TIMEOUT_S
            if b"\r\n\r\n" in self.buffer:
                break
            if not self._fill():
                raise ConnectionError(f"closed before a response: {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only or status == 100 else int(headers["content-length"])
        for _ in range(10_000):
            if len(self.buffer) >= length:
                break
            if not self._fill():
                raise ConnectionError("closed in the middle of a body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed_by_server(self) -> bool:
        """True once the server has closed the connection (EOF with nothing more to read)."""
        try:
            return not self.buffer and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def request(target: str | None = "DynamoDB_20120810.ListTables", body: bytes = b"{}",
            extra: str = "", method: str = "POST", path: str = "/",
            version: str = "HTTP/1.1") -> bytes:
    head = f"{method} {path} {version}\r\nHost: localhost\r\nAuthorization: {AUTH}\r\n"
    if target is not None:
        head += f"X-Amz-Target: {target}\r\n"
    head += "Content-Type: application/x-amz-json-1.0\r\n" + extra
    if "Transfer-Encoding" not in extra and "Content-Length" not in extra:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def error_type(body: bytes) -> str:
    return str(json.loads(body)["__type"]).rsplit("#", 1)[1]


def test_keep_alive_serves_several_requests_on_one_connection(server: Server) -> None:
    with Client(server) as client:
        for _ in range(5):
            client.send(request())
            status, headers, body = client.response()
            assert status == 200
            assert json.loads(body) == {"TableNames": []}
            assert "connection" not in headers
        client.send(request(method="GET", body=b""))
        status, _, body = client.response()
        assert (status, body) == (200, b"healthy: dynamodb.us-east-1.amazonaws.com ")


def test_dynamodb_headers_and_crc32(server: Server) -> None:
    with Client(server) as client:
        client.send(request("DynamoDB_20120810.DescribeTable", b'{"TableName": "missing"}'))
        status, headers, body = client.response()
    assert status == 400
    assert error_type(body) == "ResourceNotFoundException"
    assert headers["x-amz-crc32"] == str(zlib.crc32(body))
    assert headers["content-type"] == "application/x-amz-json-1.0"
    assert headers["content-length"] == str(len(body))
    assert len(headers["x-amzn-requestid"]) == 52
    assert headers["date"].endswith(" GMT")


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    async def slow(router: Any, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(body["delay"])
        return {"n": body["n"]}

    server.add_operation("Slow", slow)
    batch = b"".join([
        request("DynamoDB_20120810.Slow", b'{"n": 1, "delay": 0.2}'),
        request(method="GET", body=b""),                      # answered without the router
        request("DynamoDB_20120810.Slow", b'{"n": 2, "delay": 0}'),
        request("DynamoDB_20120810.Frobnicate"),              # an error, also in its place
        request("DynamoDB_20120810.Slow", b'{"n": 3, "delay": 0.05}'),
    ])
    with Client(server) as client:
        client.send(batch)
        answers = [client.response() for _ in range(5)]
    assert json.loads(answers[0][2]) == {"n": 1}
    assert answers[1][2].startswith(b"healthy")
    assert json.loads(answers[2][2]) == {"n": 2}
    assert answers[3][0] == 400 and error_type(answers[3][2]) == "UnknownOperationException"
    assert json.loads(answers[4][2]) == {"n": 3}


def test_many_pipelined_requests_pause_reading_and_all_get_answers(server: Server) -> None:
    async def echo(router: Any, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"n": body["n"]}

    server.add_operation("Echo", echo)
    count = 150  # more than the server queues per connection before it stops reading
    with Client(server) as client:
        client.send(b"".join(request("DynamoDB_20120810.Echo", b'{"n": %d}' % n)
                             for n in range(count)))
        assert [json.loads(client.response()[2])["n"] for _ in range(count)] == list(range(count))


def test_a_request_sent_a_byte_at_a_time(server: Server) -> None:
    with Client(server) as client:
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = request("DynamoDB_20120810.ListTables", b'{"Limit": 5}')
        for i in range(len(data)):
            client.send(data[i:i + 1])
        status, _, body = client.response()
        assert (status, json.loads(body)) == (200, {"TableNames": []})
        client.send(request())  # and the connection is still usable
        assert client.response()[0] == 200


def test_unknown_target_is_a_dynamodb_error_and_keeps_the_connection(server: Server) -> None:
    with Client(server) as client:
        client.send(request("DynamoDB_20120810.Frobnicate"))
        status, headers, body = client.response()
        assert (status, error_type(body)) == (400, "UnknownOperationException")
        assert headers["x-amz-crc32"] == str(zlib.crc32(body))
        client.send(request(None))
        status, _, body = client.response()
        assert (status, error_type(body)) == (400, "UnknownOperationException")
        client.send(request())
        assert client.response()[0] == 200


def test_connection_close_is_honoured(server: Server) -> None:
    with Client(server) as client:
        client.send(request(extra="Connection: close\r\n"))
        status, headers, _ = client.response()
        assert status == 200
        assert headers["connection"] == "close"
        assert client.closed_by_server()


def test_http_1_0_closes_unless_asked_to_keep_alive(server: Server) -> None:
    with Client(server) as client:
        client.send(request(version="HTTP/1.0"))
        assert client.response()[0] == 200
        assert client.closed_by_server()
    with Client(server) as client:
        client.send(request(version="HTTP/1.0", extra="Connection: keep-alive\r\n"))
        status, headers, _ = client.response()
        assert status == 200 and headers["connection"] == "keep-alive"
        client.send(request(version="HTTP/1.0", extra="Connection: keep-alive\r\n"))
        assert client.response()[0] == 200


@pytest.mark.parametrize("length", ["abc", "-1", "1 2", "99999999999999999999"])
def test_bad_content_length_is_a_400_and_closes(server: Server, length: str) -> None:
    with Client(server) as client:
        client.send(request(extra=f"Content-Length: {length}\r\n"))
        status, headers, body = client.response()
        assert status == 400
        assert headers["connection"] == "close"
        assert b"Content-Length" in body
        assert client.closed_by_server()


def test_two_content_lengths_are_refused(server: Server) -> None:
    with Client(server) as client:
        client.send(request(extra="Content-Length: 2\r\nContent-Length: 3\r\n"))
        assert client.response()[0] == 400
        assert client.closed_by_server()


def test_oversized_body_is_a_validation_exception_and_is_not_read(server: Server) -> None:
    with Client(server) as client:
        # Only the head is sent: the answer must not wait for the body.
        client.send(request(extra=f"Content-Length: {MAX_BODY + 1}\r\n", body=b""))
        status, headers, body = client.response()
        assert (status, error_type(body)) == (400, "ValidationException")
        assert f"exceeds the maximum of {MAX_BODY} bytes" in json.loads(body)["message"]
        assert headers["x-amz-crc32"] == str(zlib.crc32(body))
        assert client.closed_by_server()
    with Client(server) as client:  # authentication is still checked first
        client.send(request(extra=f"Content-Length: {MAX_BODY + 1}\r\n", body=b"").replace(
            AUTH.encode(), b"nonsense"))
        status, _, body = client.response()
        assert (status, error_type(body)) == (400, "IncompleteSignatureException")


def test_a_body_at_the_limit_is_read(server: Server) -> None:
    body = b'{"Limit": 5' + b" " * (MAX_BODY - 12) + b"}"
    assert len(body) == MAX_BODY
    with Client(server) as client:
        client.send(request(body=body))
        assert client.response()[0] == 200


def test_oversized_head_is_a_431(server: Server) -> None:
    with Client(server) as client:
        client.send(request(extra=f"X-Padding: {'a' * MAX_HEAD}\r\n"))
        status, headers, _ = client.response()
        assert status == 431 and headers["connection"] == "close"
        assert client.closed_by_server()


@pytest.mark.parametrize("line", [b"GARBAGE\r\n\r\n", b"POST /\r\n\r\n", b"POST / HTTP/2.0\r\n\r\n",
                                  b"post / HTTP/1.1\r\n\r\n", b"POST / HTTP/1.1\nHost: x\n\n",
                                  b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"])
def test_malformed_request_line_is_a_400_and_the_server_carries_on(server: Server,
                                                                    line: bytes) -> None:
    with Client(server) as client:
        client.send(line)
        status, headers, _ = client.response()
        assert status == 400 and headers["connection"] == "close"
        assert client.closed_by_server()
    with Client(server) as client:
        client.send(request())
        assert client.response()[0] == 200


def test_chunked_request_body(server: Server) -> None:
    body = b'{"Limit": 5}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:4], body[4:]))
    with Client(server) as client:
        client.send(request(extra="Transfer-Encoding: chunked\r\n", body=chunked + b"0\r\n\r\n"))
        status, _, answer = client.response()
        assert (status, json.loads(answer)) == (200, {"TableNames": []})
        # Chunks split across sends, with a chunk extension and a trailer field.
        client.send(request(extra="Transfer-Encoding: chunked\r\n", body=b"5;x=y\r\n{\"Lim"))
        client.send(b"\r\n7\r\nit\": 5}\r\n0\r\nX-Trailer: 1\r\n")
        client.send(b"\r\n")
        assert client.response()[0] == 200


def test_chunked_body_over_the_limit_and_bad_chunks(server: Server) -> None:
    with Client(server) as client:
        big = b"%x\r\n%s\r\n" % (MAX_BODY + 1, b" " * (MAX_BODY + 1))
        client.send(request(extra="Transfer-Encoding: chunked\r\n", body=big))
        status, _, body = client.response()
        assert (status, error_type(body)) == (400, "ValidationException")
        assert client.closed_by_server()
    with Client(server) as client:
        client.send(request(extra="Transfer-Encoding: chunked\r\n", body=b"zz\r\n{}\r\n0\r\n\r\n"))
        assert client.response()[0] == 400
        assert client.closed_by_server()
    with Client(server) as client:
        client.send(request(extra="Transfer-Encoding: gzip\r\n", body=b""))
        assert client.response()[0] == 501
    with Client(server) as client:
        client.send(request(extra="Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
                            body=b"2\r\n{}\r\n0\r\n\r\n"))
        assert client.response()[0] == 400


def test_expect_100_continue(server: Server) -> None:
    body = b'{"Limit": 5}'
    with Client(server) as client:
        client.send(request(extra=f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n",
                            body=b""))
        status, _, _ = client.response(head_only=True)
        assert status == 100
        client.send(body)
        assert client.response()[0] == 200


def test_health_head_and_other_routes(server: Server) -> None:
    with Client(server) as client:
        client.send(request(method="HEAD", body=b""))
        status, headers, _ = client.response(head_only=True)
        assert status == 200 and headers["content-length"] == "42"
        client.send(request(method="PUT", body=b""))
        status, headers, _ = client.response()
        assert status == 405 and headers["allow"] == "GET,HEAD,POST"
        client.send(request(path="/other"))
        assert client.response()[0] == 404
        client.send(request())  # still serving
        assert client.response()[0] == 200


def test_half_close_still_gets_its_answer(server: Server) -> None:
    async def slow(router: Any, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"ok": True}

    server.add_operation("SlowOk", slow)
    with Client(server) as client:
        client.send(request("DynamoDB_20120810.SlowOk"))
        client.sock.shutdown(socket.SHUT_WR)
        status, _, body = client.response()
        assert (status, json.loads(body)) == (200, {"ok": True})
        assert client.closed_by_server()


def test_client_gone_mid_request_does_not_hurt(server: Server) -> None:
    async def slow(router: Any, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {}

    server.add_operation("SlowGone", slow)
    for data in (request()[:30], request("DynamoDB_20120810.SlowGone"),
                 request(extra="Content-Length: 100\r\n", body=b"{")):
        client = Client(server)
        client.send(data)
        linger_0 = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {on, 0 s}
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_0)
        client.sock.close()  # RST
    with Client(server) as client:
        client.send(request())
        assert client.response()[0] == 200
    for _ in range(200):  # bounded: the server notices the resets
        if server.connections() == 0:
            break
        threading.Event().wait(0.01)
    assert server.connections() == 0


def test_boto3_through_the_lean_server(server: Server) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{server.port}",
                          region_name=REGION, aws_access_key_id="AKID",
                          aws_secret_access_key="secret",
                          config=Config(retries={"total_max_attempts": 1}, connect_timeout=5,
                                        read_timeout=TIMEOUT_S))
    assert client.list_tables()["TableNames"] == []
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_table(TableName="missing")
    client.close()
