"""The bench's HTTP/1.1 client: answer framing, connection reuse and its failure names.

Framing is checked on the pure parsers; the rest against a scripted asyncio server in this
process (127.0.0.1, port 0) that answers each request as the test says.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chaos.workload.auth import StaticHeaders
from chaos.workload.client import DISCONNECTED, DynamoClient, Reply, _Disconnected, dechunk, \
    parse_head

pytestmark = pytest.mark.timeout(60)

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}"


# -- framing ------------------------------------------------------------------------------

def test_a_content_length_answer_is_complete_only_with_its_whole_body() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    for cut in range(answer.index(b"\r\n\r\n") + 4):
        assert parse_head(answer[:cut]) is None
    head = parse_head(answer)
    assert head is not None and head.status == 200 and head.length == 5 and head.keep_alive
    assert answer[head.body_start:] == b"hello"


def test_informational_answers_are_skipped_and_close_is_honoured() -> None:
    head = parse_head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad\r\nConnection: close\r\n"
                      b"Content-Length: 0\r\n\r\n")
    assert head is not None and head.status == 400 and not head.keep_alive
    head10 = parse_head(b"HTTP/1.0 200 OK\r\n\r\n")
    assert head10 is not None and head10.length is None and not head10.keep_alive


def test_chunked_bodies_join_their_chunks_once_the_last_arrives() -> None:
    body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\n"
    assert dechunk(body, 0) is None  # the final empty line is missing
    assert dechunk(body + b"\r\n", 0) == b"Wikipedia"
    assert dechunk(body + b"X-Trailer: 1\r\n\r\n", 0) == b"Wikipedia"
    assert dechunk(b"4\r\nWi", 0) is None


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n"])
def test_what_is_not_http_is_a_disconnect(garbage: bytes) -> None:
    with pytest.raises(_Disconnected):
        parse_head(garbage)
    with pytest.raises(_Disconnected):
        dechunk(b"zz\r\n", 0)


# -- against a scripted server ------------------------------------------------------------

Action = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def send(data: bytes, close: bool = False) -> Action:
    async def act(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()
    return act


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """No answer: wait until the client gives up on the connection."""
    await asyncio.wait_for(reader.read(), 30)
    writer.close()


@dataclass
class Script:
    actions: list[Action]
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    most_open: int = 0
    open: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            for _ in range(100):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                self.heads.append(head)
                await self.actions.pop(0)(reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def run(script: Script, calls: Callable[[DynamoClient], Awaitable[list[Reply]]],
        connections: int = 4, timeout_s: float = 5.0) -> list[Reply]:
    async def main() -> list[Reply]:
        server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with DynamoClient(f"http://127.0.0.1:{port}", StaticHeaders("us-east-1"),
                                    connections, timeout_s) as client:
                replies = await calls(client)
            for _ in range(200):  # let the handlers see the client's connections end
                if script.open == 0:
                    break
                await asyncio.sleep(0.01)
            return replies
        finally:
            server.close()
    return asyncio.run(main())


def in_turn(n: int) -> Callable[[DynamoClient], Awaitable[list[Reply]]]:
    async def calls(client: DynamoClient) -> list[Reply]:
        return [await client.call("GetItem", b'{"TableName":"t"}') for _ in range(n)]
    return calls


def test_connections_are_kept_alive_and_the_head_is_botocores() -> None:
    script = Script([send(OK) for _ in range(3)])
    replies = run(script, in_turn(3))
    assert [r.ok for r in replies] == [True] * 3 and replies[0].body == b"{}"
    assert script.connections == 1
    head = script.heads[0].decode()
    assert head.startswith("POST / HTTP/1.1\r\n")
    assert "\r\nHost: 127.0.0.1:" in head and "\r\nContent-Length: 17\r\n" in head
    assert "\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n" in head


def test_a_closed_or_unframed_answer_ends_its_connection_but_not_the_next_call() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"1\r\n{\r\n1\r\n}\r\n0\r\n\r\n")
    script = Script([send(OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")),
                     send(b"HTTP/1.1 200 OK\r\n\r\n{}", close=True),  # body until the end
                     send(chunked), send(OK)])
    replies = run(script, in_turn(4))
    assert [(r.ok, r.body) for r in replies] == [(True, b"{}")] * 4
    assert script.connections == 3  # the chunked answer's connection served the last call


def test_errors_are_named_by_dynamodb_type_or_by_transport() -> None:
    throttled = (b'{"__type":"com.amazonaws.dynamodb.v20120810#'
                 b'ProvisionedThroughputExceededException","message":"slow down"}')
    script = Script([send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(throttled), throttled)),
                     send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", close=True),
                     hang, send(OK)])
    replies = run(script, in_turn(4), timeout_s=0.5)
    assert (replies[0].status, replies[0].error, replies[0].transport) == \
        (400, "ProvisionedThroughputExceededException", False)
    assert (replies[1].error, replies[1].transport) == (DISCONNECTED, True)
    assert (replies[2].error, replies[2].transport) == ("Timeout", True)
    assert replies[3].ok  # on a new connection: the timed-out one was dropped
    assert script.connections == 3


def test_no_more_connections_than_the_limit() -> None:
    async def slow_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        await send(OK)(reader, writer)

    async def together(client: DynamoClient) -> list[Reply]:
        return list(await asyncio.gather(*(client.call("GetItem", b"{}") for _ in range(8))))

    script = Script([slow_ok for _ in range(8)])
    replies = run(script, together, connections=2)
    assert all(r.ok for r in replies)
    assert script.connections == 2 and script.most_open == 2


def test_a_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> Reply:
        async with DynamoClient(f"http://127.0.0.1:{port}", StaticHeaders("us-east-1"), 1,
                                5.0) as client:
            return await client.call("GetItem", b"{}")
    reply = asyncio.run(main())
    assert (reply.status, reply.error, reply.transport) == (0, "ConnectionRefusedError", True)


TLS = Path(__file__).parent / "tls"  # a self-signed pair for 127.0.0.1, made for these tests


@pytest.mark.parametrize("trusted", [True, False])
def test_https_verifies_the_server(monkeypatch: pytest.MonkeyPatch, trusted: bool) -> None:
    if trusted:  # OpenSSL's default verify paths honour it: ssl.create_default_context reads it
        monkeypatch.setenv("SSL_CERT_FILE", str(TLS / "cert.pem"))
    script = Script([send(OK), send(OK)])

    async def main() -> list[Reply]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS / "cert.pem", TLS / "key.pem")
        server = await asyncio.start_server(script.serve, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            async with DynamoClient(f"https://127.0.0.1:{port}", StaticHeaders("us-east-1"), 1,
                                    5.0) as client:
                return [await client.call("GetItem", b"{}") for _ in range(2)]
        finally:
            server.close()
    replies = asyncio.run(main())
    if trusted:
        assert [r.ok for r in replies] == [True, True] and script.connections == 1
        assert b"\r\nHost: 127.0.0.1:" in script.heads[0]
    else:
        assert [(r.error, r.transport) for r in replies] == [("SSLCertVerificationError", True)] * 2
