"""A thin DynamoDB-over-HTTP client: pre-built bodies in, `Reply` out.

HTTP/1.1 keep-alive connections on plain asyncio protocols, one request in flight on each. The
bench's own CPU is part of what it measures on a small machine: with aiohttp's client a worker
spent 0.13-0.20 ms a request, two thirds of it in aiohttp (ClientRequest, StreamWriter, response
objects), and 0.04-0.07 ms with this one. A DynamoDB call needs only a POST with a body and an
answer delimited by Content-Length, chunks or the connection's end (docs/performance.md, 18).

No retries, on purpose: a load generator reports what the endpoint did (throttles, timeouts,
disconnects) instead of hiding it the way SDK retries do.
"""
from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from chaos.workload.auth import HeaderSource
from chaos.workload.bodies import error_type

__all__ = ["Reply", "DynamoClient", "DISCONNECTED"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_HEAD_BYTES = 64 * 1024  # an answer's status line and headers; DynamoDB's are ~300 B
DISCONNECTED = "ServerDisconnectedError"  # the error name aiohttp gave, kept for old results


@dataclass(frozen=True, slots=True)
class Reply:
    status: int  # HTTP status; 0 when no response arrived
    body: bytes
    error: str | None = None  # DynamoDB error type, or the transport error's name
    transport: bool = False  # True: no (complete) HTTP response

    @property
    def ok(self) -> bool:
        return self.error is None

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class _Disconnected(Exception):
    """The connection ended (or sent what is not HTTP) before a whole answer arrived."""


@dataclass(frozen=True, slots=True)
class _Head:
    status: int
    body_start: int
    length: int | None  # Content-Length; None: chunked, or until the connection ends
    chunked: bool
    keep_alive: bool


_Answer = tuple[int, bytes, bool]  # status, body, whether the connection may be used again


def parse_head(buffer: bytes | bytearray) -> _Head | None:
    """The answer's head once it is all in `buffer` (None before); 1xx answers are skipped."""
    start = 0
    for _ in range(8):  # a few informational answers (100 Continue) at most
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            if len(buffer) - start > _MAX_HEAD_BYTES:
                raise _Disconnected("answer head too long")
            return None
        lines = bytes(buffer[start:end]).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise _Disconnected("not an HTTP answer")
        status = int(parts[1])
        if 100 <= status < 200:
            start = end + 4
            continue
        length: int | None = None
        chunked = False
        keep_alive = parts[0] != b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep_alive = value.strip().lower() != b"close"
        return _Head(status, end + 4, None if chunked else length, chunked, keep_alive)
    raise _Disconnected("too many informational answers")


def dechunk(buffer: bytes | bytearray, start: int) -> bytes | None:
    """A chunked body from `start` once it is complete in `buffer` (None before)."""
    parts: list[bytes] = []
    at = start
    while at <= len(buffer):  # every pass consumes at least one line
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
        except ValueError:
            raise _Disconnected("bad chunk size") from None
        at = line_end + 2
        if size == 0:  # the last chunk: trailers (usually none), then an empty line
            if buffer[at:at + 2] == b"\r\n":
                return b"".join(parts)
            return b"".join(parts) if buffer.find(b"\r\n\r\n", at) >= 0 else None
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at:at + size]))
        at += size + 2
    return None


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; `send` one request, await its answer, then the next."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.is_open = False
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._waiter: asyncio.Future[_Answer] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.is_open = True

    def send(self, data: bytes) -> asyncio.Future[_Answer]:
        assert self.transport is not None and self._waiter is None
        self._buffer.clear()
        self._head = None
        self._waiter = self._loop.create_future()
        self.transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.abort()  # nothing was asked (or the asker gave up): the stream is out of step
            return
        self._buffer += data
        self._answer(eof=False)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_open = False
        if self._waiter is not None and not self._waiter.done():
            self._answer(eof=True)

    def abort(self) -> None:
        self.is_open = False
        if self.transport is not None:
            self.transport.abort()

    def _answer(self, eof: bool) -> None:
        waiter = self._waiter
        assert waiter is not None
        try:
            answer = self._complete(eof)
        except (_Disconnected, ValueError) as exc:
            self.abort()
            waiter.set_exception(_Disconnected(str(exc)))
            return
        if answer is not None:
            self._waiter = None
            waiter.set_result(answer)
        elif eof:
            waiter.set_exception(_Disconnected("the connection ended before the answer"))

    def _complete(self, eof: bool) -> _Answer | None:
        buffer = self._buffer
        head = self._head
        if head is None:
            head = self._head = parse_head(buffer)
            if head is None:
                return None
        start = head.body_start
        if head.chunked:
            body = dechunk(buffer, start)
            return None if body is None else (head.status, body, head.keep_alive)
        if head.length is not None:
            if len(buffer) - start < head.length:
                return None
            return head.status, bytes(buffer[start:start + head.length]), head.keep_alive
        # Neither length nor chunks: the body is whatever comes until the connection ends.
        return (head.status, bytes(buffer[start:]), False) if eof else None


class DynamoClient:
    """Use inside a running event loop: `async with DynamoClient(...) as client`.

    At most `connections` connections, reused while the server keeps them open.
    """

    def __init__(self, endpoint: str, headers: HeaderSource, connections: int,
                 timeout_s: float) -> None:
        url = urlsplit(endpoint)
        if url.scheme not in _DEFAULT_PORTS or not url.hostname:
            raise ValueError(f"endpoint must be an http:// or https:// URL, not {endpoint!r}")
        self._host = url.hostname
        self._port = url.port or _DEFAULT_PORTS[url.scheme]
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        # As botocore signs it: the port only when it is not the scheme's default.
        host = f"[{self._host}]" if ":" in self._host else self._host  # an IPv6 literal
        self._host_header = host if url.port in (None, _DEFAULT_PORTS[url.scheme]) \
            else f"{host}:{url.port}"
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._headers = headers
        self._limit = max(1, connections)
        self._timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        # The request head per operation, kept while the header source returns the same mapping
        # (StaticHeaders does; a SigV4 signer makes a new one per request).
        self._heads: dict[str, tuple[Mapping[str, str], bytes]] = {}
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> DynamoClient:
        # Kept: asyncio.get_running_loop() is a getpid() system call on Python 3.11.
        self._loop = asyncio.get_running_loop()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closed = True
        for conn in list(self._all):
            conn.abort()
        self._all.clear()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()

    async def call(self, operation: str, body: bytes) -> Reply:
        loop = self._loop
        assert loop is not None, "DynamoClient used outside `async with`"
        try:
            conn = await self._acquire()
        except asyncio.TimeoutError:
            return Reply(0, b"", "Timeout", transport=True)
        except OSError as exc:
            return Reply(0, b"", type(exc).__name__, transport=True)
        answer = conn.send(self._head(operation, body) + body)
        timer = loop.call_later(self._timeout_s, _expire, answer)
        try:
            status, payload, keep_alive = await answer
        except asyncio.TimeoutError:
            self._discard(conn)
            return Reply(0, b"", "Timeout", transport=True)
        except _Disconnected:
            self._discard(conn)
            return Reply(0, b"", DISCONNECTED, transport=True)
        except BaseException:  # cancelled mid-request: the connection is out of step
            self._discard(conn)
            raise
        finally:
            timer.cancel()
        self._release(conn, keep_alive)
        if status == 200:
            return Reply(status, payload)
        return Reply(status, payload, error_type(status, payload))

    async def call_json(self, operation: str, document: dict[str, Any]) -> Reply:
        return await self.call(operation, orjson.dumps(document))

    # -- connections ----------------------------------------------------------------------
    async def _acquire(self) -> _Connection:
        if self._closed:
            raise ConnectionAbortedError("the client is closed")
        idle = self._idle
        while idle:
            conn = idle.pop()  # the most recently used: warm, and least likely closed
            if conn.is_open:
                return conn
            self._all.discard(conn)
        loop = self._loop
        assert loop is not None
        if len(self._all) >= self._limit:
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            # A timer, not wait_for: a connection handed over as the wait ends is never lost.
            timer = loop.call_later(self._timeout_s, _expire, waiter)
            try:
                handed = await waiter
            finally:
                timer.cancel()
            if handed is not None:
                return handed
        conn = _Connection(loop)
        self._all.add(conn)  # counts against the limit from now on, while it connects too
        try:
            await asyncio.wait_for(loop.create_connection(
                lambda: conn, self._host, self._port, ssl=self._ssl,
                server_hostname=self._host if self._ssl is not None else None),
                self._timeout_s)
        except BaseException:
            self._all.discard(conn)
            self._wake_waiter(None)
            raise
        return conn

    def _release(self, conn: _Connection, keep_alive: bool) -> None:
        if not keep_alive or not conn.is_open or self._closed:
            self._discard(conn)
            return
        if not self._wake_waiter(conn):
            self._idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.abort()
        self._all.discard(conn)
        self._wake_waiter(None)  # a waiter may open a connection in its place

    def _wake_waiter(self, conn: _Connection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # not timed out or cancelled
                waiter.set_result(conn)
                return True
        return False

    def _head(self, operation: str, body: bytes) -> bytes:
        headers = self._headers.headers(operation, body)
        cached = self._heads.get(operation)
        if cached is None or cached[0] is not headers:
            lines = [f"POST {self._path} HTTP/1.1", f"Host: {self._host_header}"]
            lines += [f"{name}: {value}" for name, value in headers.items()
                      if name.lower() not in ("host", "content-length")]
            cached = (headers, ("\r\n".join(lines) + "\r\n").encode("latin-1"))
            self._heads[operation] = cached
        return cached[1] + b"Content-Length: %d\r\n\r\n" % len(body)


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(asyncio.TimeoutError())
