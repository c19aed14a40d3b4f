"""The DynamoDB JSON protocol over HTTP/1.1, and THE place errors become wire errors.

`POST /` with `X-Amz-Target: DynamoDB_20120810.<Operation>` (or, for the Streams API,
`DynamoDBStreams_20120810.<Operation>`) and a JSON body; the answer carries
DynamoDB's headers (`x-amzn-RequestId`, `x-amz-crc32` of the body bytes, Content-Type
application/x-amz-json-1.0). Any well-formed SigV4 `Authorization` header is accepted (DESIGN.md:
no authentication yet); a missing or malformed one is refused as DynamoDB refuses it. `GET /`
(and `HEAD /`) is the health answer DynamoDB gives.

`error_response` maps every exception to (status, body): a dynalab.errors type to its
`http_status` and `to_wire()`; anything else to a 500 InternalServerError with a log line and no
detail for the client.

The HTTP/1.1 server is a lean `asyncio.Protocol` (docs/performance.md: aiohttp's request and
response machinery was a third of the router's CPU per GetItem). It parses only what DynamoDB
clients send and what the endpoint needs: the request line, Content-Length (or a chunked body),
X-Amz-Target, Authorization, Connection and Expect. Persistent connections; pipelined requests are
answered in order, one at a time per connection; `Expect: 100-continue` is honoured; a head over
`MAX_HEAD_BYTES` is a 431, a body over `MAX_REQUEST_BYTES` a ValidationException, a malformed
request a 400; the last three close the connection. A client disconnecting does not cancel its
request (a write in flight completes; its answer is dropped).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import re
import socket
import time
import zlib
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import orjson

from dynalab.errors import (ClientError, DynalabError, SerializationException, ServerError,
                            UnknownOperationException, ValidationException)
from router.app import Router

__all__ = ["HttpServer", "error_response", "MissingAuthenticationTokenException",
           "IncompleteSignatureException", "TARGET_PREFIX", "STREAMS_TARGET_PREFIX",
           "MAX_REQUEST_BYTES", "MAX_HEAD_BYTES"]

log = logging.getLogger(__name__)

TARGET_PREFIX = "DynamoDB_20120810."
STREAMS_TARGET_PREFIX = "DynamoDBStreams_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
MAX_REQUEST_BYTES = 17 * 1024 * 1024  # a full BatchWriteItem (25 x 400 KB) plus JSON overhead
MAX_HEAD_BYTES = 64 * 1024            # request line and headers together
_SIGV4_PARTS = ("Credential", "SignedHeaders", "Signature")
_ids = random.Random()  # seeded from urandom at import
_SIGV4_RE = re.compile(r"AWS4-HMAC-SHA256\s+(.*)", re.DOTALL)
# What botocore sends, in one pass; anything else goes through the full check below.
_SIGV4_USUAL = re.compile(r"\s*AWS4-HMAC-SHA256\s+Credential=[^,\s]+,\s*SignedHeaders=[^,\s]+,"
                          r"\s*Signature=[^,\s]+\s*")


class MissingAuthenticationTokenException(ClientError):
    # Lives here, not in dynalab.errors, because only the HTTP front door can raise it.
    aws_type = "MissingAuthenticationTokenException"


class IncompleteSignatureException(ClientError):
    aws_type = "IncompleteSignatureException"


# ---------------------------------------------------------------------------------------------
# The DynamoDB layer: headers -> (operation, body) -> answer or wire error.

def error_response(exc: BaseException, operation: str = "?") -> tuple[int, bytes]:
    """The HTTP status and body for an exception raised while serving `operation`."""
    if isinstance(exc, DynalabError):
        if exc.http_status >= 500:
            log.warning("%s failed: %s: %s", operation, exc.aws_type, exc.message)
        return exc.http_status, orjson.dumps(exc.to_wire())
    log.error("%s failed with an unexpected error", operation, exc_info=exc)
    internal = ServerError("Internal server error")
    return internal.http_status, orjson.dumps(internal.to_wire())


def _check_authorization(value: str | None) -> None:
    if not value:
        raise MissingAuthenticationTokenException("Request is missing Authentication Token")
    if _SIGV4_USUAL.fullmatch(value):
        return
    match = _SIGV4_RE.fullmatch(value.strip())
    fields = dict(_split_field(part) for part in match.group(1).split(",")) if match else {}
    missing = [name for name in _SIGV4_PARTS if not fields.get(name)]
    if match is None or missing:
        problems = " ".join(f"Authorization header requires '{name}' parameter."
                            for name in (missing or _SIGV4_PARTS))
        raise IncompleteSignatureException(f"{problems} Authorization={value}")


def _split_field(part: str) -> tuple[str, str]:
    name, _, value = part.strip().partition("=")
    return name, value


def _operation(target: str) -> tuple[str, bool]:
    """(operation, whether it is a DynamoDB Streams one) from X-Amz-Target."""
    if target.startswith(TARGET_PREFIX):
        return target[18:], False  # len(TARGET_PREFIX)
    if target.startswith(STREAMS_TARGET_PREFIX):
        return target[25:], True   # len(STREAMS_TARGET_PREFIX)
    raise UnknownOperationException(f"Unknown operation: {target or '(no X-Amz-Target)'}")


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if not raw.strip():
            return {}
        raise SerializationException("Could not parse the request body as JSON") from None
    if isinstance(body, dict):
        return body
    if isinstance(body, list):
        raise SerializationException("Start of list found where not expected")
    raise SerializationException("Unexpected value type in payload")


def _request_id() -> bytes:
    # DynamoDB's request ids: 52 upper-case characters of a base32hex-like alphabet. Hex digits
    # are in it; a request id needs to be unique, not secret, so no urandom syscall and no
    # b32encode (a Python loop) per request (docs/performance.md).
    return b"%052X" % _ids.getrandbits(208)


# ---------------------------------------------------------------------------------------------
# HTTP/1.1.

# The request line. Header fields are found with bytes.find on a lower-cased copy of the block
# (one regex over every header line was the HTTP layer's largest cost).
_REQUEST_LINE_RE = re.compile(rb"([A-Z]+) ([^ \x00-\x1f\x7f]+) HTTP/1\.([01])")
_RARE_FIELDS_RE = re.compile(rb"\r\n(?:connection|transfer-encoding|expect):")
_DIGITS_RE = re.compile(rb"[0-9]{1,12}")
_HEX_RE = re.compile(rb"[0-9A-Fa-f]{1,8}")
_REASONS = collections.defaultdict(lambda: b"500 Internal Server Error", {
    status.value: f"{status.value} {status.phrase}".encode() for status in HTTPStatus})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = b"Connection: close\r\n"
_DYNAMO_HEAD = (b"HTTP/1.1 %s\r\nx-amzn-RequestId: %s\r\nx-amz-crc32: %d\r\n"
                b"Content-Type: " + CONTENT_TYPE.encode() + b"\r\nContent-Length: %d\r\n"
                b"Date: %s\r\nServer: Server\r\n%s\r\n")
_PLAIN_HEAD = (b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
               b"Date: %s\r\nServer: Server\r\n%s\r\n")
_SMALL_BODY = 16 * 1024  # up to this, head and body are joined into one write
_MAX_QUEUED = 32         # pipelined requests waiting on one connection before reading pauses
_SWEEP_S = 15.0          # how often idle connections are looked for


def _field(fields: bytes, lower: bytes, name: bytes) -> bytes | None:
    """The value of the first field `name` (b"\\r\\nname:", lower case) in `fields` (`lower` is
    `fields.lower()`), without surrounding blanks; None if there is none."""
    at = lower.find(name)
    if at < 0:
        return None
    start = at + len(name)
    return fields[start:fields.find(b"\r\n", start)].strip(b" \t")


class _BadRequest(Exception):
    """The request cannot be read as HTTP: answered with `status` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Clock:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._date = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date


class HttpServer:
    """The DynamoDB endpoint of one router: `await start(host, port)`, then `await close()`."""

    def __init__(self, router: Router, *, max_body_bytes: int = MAX_REQUEST_BYTES,
                 max_head_bytes: int = MAX_HEAD_BYTES, keepalive_s: float = 75.0) -> None:
        self.router = router
        self.max_body_bytes = max_body_bytes
        self.max_head_bytes = max_head_bytes
        self.keepalive_s = keepalive_s
        self.clock = _Clock()
        self.health_body = f"healthy: dynamodb.{router.region}.amazonaws.com ".encode()
        self.connections: set[_Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None  # once started (asyncio.get_running_loop
        # is a getpid() system call on Python 3.11: not once per request)
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); returns the bound port."""
        loop = self.loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port,
                                                reuse_address=True, backlog=1024)
        self._sweeper = loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop listening, let requests in flight finish (for up to `grace_s`), close the rest."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        deadline = time.monotonic() + grace_s
        while any(c.busy for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _sweep(self) -> None:
        """Close connections that were idle for `keepalive_s` (no per-request timer)."""
        limit = max(1, round(self.keepalive_s / _SWEEP_S))
        while True:
            await asyncio.sleep(_SWEEP_S)
            for connection in list(self.connections):
                if connection.busy or connection.activity != connection.seen:
                    connection.seen = connection.activity
                    connection.idle_sweeps = 0
                else:
                    connection.idle_sweeps += 1
                    if connection.idle_sweeps >= limit:
                        connection.close()


# One request, parsed: (method, path, keep_alive, target, authorization, body). keep_alive is
# one of _CLOSE_AFTER, _KEEP (HTTP/1.1), _KEEP_10 (HTTP/1.0 that asked for it). Two internal
# "methods" stand for answers decided while parsing: _TOO_LARGE and _UNREADABLE.
_Request = tuple[bytes, bytes, int, "bytes | None", "bytes | None", bytes]
_CLOSE_AFTER, _KEEP, _KEEP_10 = 0, 1, 2
_CONNECTION_FIELD = (b"Connection: close\r\n", b"", b"Connection: keep-alive\r\n")
_TOO_LARGE = b"<too large>"
_UNREADABLE = b"<unreadable>"


class _Connection(asyncio.Protocol):
    """One client connection. Requests are parsed in `data_received`; an answer that needs no
    await is written there and then; one that does runs in a task, and the requests behind it
    wait in `_queue`, so answers always leave in request order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._router = server.router
        self._transport: asyncio.Transport | None = None
        self._partial = b""           # the start of a request head not yet complete
        self._head: tuple[bytes, bytes, int, bytes | None, bytes | None] | None = None
        self._body = bytearray()      # the body of `_head` received so far (raw, if chunked)
        self._body_wants = 0          # its Content-Length; -1: chunked
        self._chunk_pos = 0           # chunked: where decoding continues in `_body`
        self._chunks = bytearray()    # chunked: the decoded body so far
        self._queue: collections.deque[_Request] = collections.deque()
        self._closing = False         # read no further requests (close asked, error, EOF)
        self._eof = False             # the client has sent everything it will send
        self._read_paused = False
        self._write_paused = False
        self.busy = False             # an answer is being computed in a task
        self.activity = 0             # bumped on input; the idle sweep compares it
        self.seen = 0
        self.idle_sweeps = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None
        self._closing = True
        self._queue.clear()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._flow()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._flow()

    def data_received(self, data: bytes) -> None:
        self.activity += 1
        if self._closing:
            return
        try:
            if self._head is not None:
                data = self._more_body(data)
            elif self._partial:
                data = self._partial + data
                self._partial = b""
            if data:
                self._parse(data)
        except _BadRequest as exc:
            self._closing = True
            self._partial, self._head = b"", None
            body = f"{exc.status} {HTTPStatus(exc.status).phrase}: {exc}".encode()
            self._request((_UNREADABLE, b"", _CLOSE_AFTER, None, None, _PLAIN_HEAD % (
                _REASONS[exc.status], len(body), self._server.clock.date(), _CLOSE) + body))

    def eof_received(self) -> bool:
        # The client has sent its last byte: answer what it asked, then close.
        self._eof = self._closing = True
        self._finish()
        return True  # keep the transport open for the answers still owed

    def shutdown(self) -> None:
        """Read no further requests; close once the answers owed are written."""
        self._eof = self._closing = True
        self._finish()

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    # -- parsing

    def _parse(self, data: bytes) -> None:
        """Handle the requests in `data`, which starts at a request head."""
        server = self._server
        size = len(data)
        pos = 0
        while pos < size and not self._closing:
            while data.startswith(b"\r\n", pos):  # blank lines before a request are allowed
                pos += 2
            head_end = data.find(b"\r\n\r\n", pos)
            if head_end < 0 or head_end - pos > server.max_head_bytes:
                if size - pos > server.max_head_bytes:
                    raise _BadRequest(431, "the request head is too large")
                if data.find(b"\n\n", pos) >= 0:
                    raise _BadRequest(400, "lines must end with CRLF")
                self._partial = data[pos:]
                return
            line_end = data.find(b"\r\n", pos)
            match = _REQUEST_LINE_RE.fullmatch(data, pos, line_end)
            if match is None:
                raise _BadRequest(400, "malformed request line")
            # b"\r\nName: value\r\n...\r\n": every field line starts with CRLF and ends before one.
            fields = data[line_end:head_end + 2]
            lower = fields.lower()
            keep_alive = _KEEP if match.group(3) == b"1" else _CLOSE_AFTER
            target = _field(fields, lower, b"\r\nx-amz-target:")
            authorization = _field(fields, lower, b"\r\nauthorization:")
            length = _field(fields, lower, b"\r\ncontent-length:")
            if length is not None and lower.count(b"\r\ncontent-length:") > 1:
                raise _BadRequest(400, "more than one Content-Length field")
            chunked = expect = False
            if _RARE_FIELDS_RE.search(lower) is not None:  # one pass for three rare fields
                tokens = _field(lower, lower, b"\r\nconnection:")
                if tokens is not None:
                    if b"close" in tokens:
                        keep_alive = _CLOSE_AFTER
                    elif b"keep-alive" in tokens and keep_alive == _CLOSE_AFTER:
                        keep_alive = _KEEP_10
                coding = _field(lower, lower, b"\r\ntransfer-encoding:")
                if coding is not None:
                    if coding != b"chunked":
                        raise _BadRequest(501, "only the chunked transfer coding is supported")
                    chunked = True
                expect = _field(lower, lower, b"\r\nexpect:") == b"100-continue"
            if chunked:
                if length is not None:
                    raise _BadRequest(400, "both Content-Length and Transfer-Encoding")
                wants = -1
            elif length is None:
                wants = 0  # a request without either field has no body (RFC 9112 6.3)
            elif _DIGITS_RE.fullmatch(length):
                wants = int(length)
            else:
                raise _BadRequest(400, "invalid Content-Length")
            head = (match.group(1), match.group(2), keep_alive, target, authorization)
            pos = head_end + 4
            if wants > server.max_body_bytes:
                self._too_large(head)
                return
            if 0 <= wants <= size - pos:
                self._request((*head, data[pos:pos + wants]))
                pos += wants
                continue
            # The body is still coming.
            self._head, self._body_wants = head, wants
            if expect and size == pos:
                self._write(_CONTINUE)
            data = self._more_body(data[pos:])  # b"" unless a chunked body was complete
            size, pos = len(data), 0

    def _more_body(self, data: bytes) -> bytes:
        """Add `data` to the body being received; once it is complete, handle the request and
        return what follows it (else b"")."""
        body = self._body
        body += data
        if self._body_wants >= 0:
            wants = self._body_wants
            if len(body) < wants:
                return b""
            complete, rest = bytes(body[:wants]), bytes(body[wants:])
        else:
            end = self._dechunk(body)
            if end < 0:
                return b""
            complete, rest = bytes(self._chunks), bytes(body[end:])
        head = self._head
        assert head is not None
        self._head, self._body, self._chunks, self._chunk_pos = None, bytearray(), bytearray(), 0
        self._request((*head, complete))
        return b"" if self._closing else rest

    def _dechunk(self, raw: bytearray) -> int:
        """Decode the chunks in `raw` from `_chunk_pos` on: where the chunked body ends in `raw`
        once it is complete, else -1."""
        pos = self._chunk_pos
        while True:
            line_end = raw.find(b"\r\n", pos)
            if line_end < 0:
                if len(raw) - pos > 1024:
                    raise _BadRequest(400, "malformed chunk size line")
                self._chunk_pos = pos
                return -1
            size_field = bytes(raw[pos:line_end]).split(b";", 1)[0].strip()
            if not _HEX_RE.fullmatch(size_field):
                raise _BadRequest(400, "malformed chunk size line")
            size = int(size_field, 16)
            if size == 0:  # the last chunk, optional trailer fields, a blank line
                end = raw.find(b"\r\n\r\n", line_end)
                if end < 0:
                    if len(raw) - line_end > self._server.max_head_bytes:
                        raise _BadRequest(431, "the chunked trailer is too large")
                    self._chunk_pos = pos
                    return -1
                return end + 4
            data_end = line_end + 2 + size
            if len(raw) < data_end + 2:
                self._chunk_pos = pos
                return -1
            if raw[data_end:data_end + 2] != b"\r\n":
                raise _BadRequest(400, "malformed chunk")
            if len(self._chunks) + size > self._server.max_body_bytes:
                head = self._head
                assert head is not None
                self._head, self._body, self._chunks = None, bytearray(), bytearray()
                self._too_large(head)
                return -1
            self._chunks += raw[line_end + 2:data_end]
            pos = data_end + 2

    def _too_large(self, head: tuple[bytes, bytes, int, bytes | None, bytes | None]) -> None:
        """A body over the limit is not read: the answer is the error this request gets
        (authentication and target are checked first, as for any request); then close."""
        self._closing = True
        self._request((_TOO_LARGE, head[1], _CLOSE_AFTER, head[3], head[4], b""))

    # -- answering

    def _request(self, request: _Request) -> None:
        if not request[2]:
            self._closing = True  # nothing after this request is read
        if self.busy:
            self._queue.append(request)
            if len(self._queue) >= _MAX_QUEUED:
                self._flow()
        else:
            self._answer(request)

    def _answer(self, request: _Request) -> None:
        """Answer `request`, then the queued ones, until one has to wait for the router."""
        while True:
            method, path, keep_alive, target, authorization, raw = request
            if method == b"POST" and (path == b"/" or path.startswith(b"/?")):
                operation = "?"
                try:
                    _check_authorization(None if authorization is None
                                         else authorization.decode("latin-1"))
                    operation, streams = _operation("" if target is None
                                                    else target.decode("latin-1"))
                    body = _parse_body(raw)
                except Exception as exc:  # noqa: BLE001 - every failure becomes a wire error
                    self._respond(*error_response(exc, operation), keep_alive)
                else:
                    self.busy = True
                    self._server.loop.create_task(  # type: ignore[union-attr]
                        self._serve(operation, streams, body, keep_alive))
                    return
            elif method == _UNREADABLE:
                self._send(raw, b"", _CLOSE_AFTER)
            elif method == _TOO_LARGE:
                operation = "?"
                try:
                    _check_authorization(None if authorization is None
                                         else authorization.decode("latin-1"))
                    operation, _ = _operation("" if target is None else target.decode("latin-1"))
                    raise ValidationException(f"Request size exceeds the maximum of "
                                              f"{self._server.max_body_bytes} bytes")
                except Exception as exc:  # noqa: BLE001
                    self._respond(*error_response(exc, operation), _CLOSE_AFTER)
            else:
                self._respond_plain(method, path, keep_alive)
            if not self._queue:
                self._finish()
                return
            request = self._queue.popleft()

    async def _serve(self, operation: str, streams: bool, body: dict[str, Any],
                     keep_alive: int) -> None:
        try:
            status, payload = 200, orjson.dumps(
                await self._router.handle(operation, body, streams=streams))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a wire error right here
            status, payload = error_response(exc, operation)
        self.busy = False
        self._respond(status, payload, keep_alive)
        if self._queue:
            self._answer(self._queue.popleft())
        else:
            self._finish()

    def _respond(self, status: int, payload: bytes, keep_alive: int) -> None:
        self._send(_DYNAMO_HEAD % (_REASONS[status], _request_id(), zlib.crc32(payload),
                                   len(payload), self._server.clock.date(),
                                   _CONNECTION_FIELD[keep_alive]), payload, keep_alive)

    def _respond_plain(self, method: bytes, path: bytes, keep_alive: int) -> None:
        """Everything but the DynamoDB API: the health answer of `GET /`, and 404 / 405."""
        fields = _CONNECTION_FIELD[keep_alive]
        if path != b"/" and not path.startswith(b"/?"):
            status, body = 404, b"404: Not Found"
        elif method in (b"GET", b"HEAD"):
            status, body = 200, self._server.health_body
        else:
            status, body = 405, b"405: Method Not Allowed"
            fields += b"Allow: GET,HEAD,POST\r\n"
        head = _PLAIN_HEAD % (_REASONS[status], len(body), self._server.clock.date(), fields)
        self._send(head, b"" if method == b"HEAD" else body, keep_alive)

    def _send(self, head: bytes, body: bytes, keep_alive: int) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if len(body) <= _SMALL_BODY:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        if not keep_alive:
            self._closing = True
            self._queue.clear()
            transport.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _finish(self) -> None:
        """Nothing is queued: read again if reading was paused; close after the client's EOF."""
        if self._eof and not self.busy and not self._queue:
            self.close()
        elif self._read_paused or self._write_paused:
            self._flow()

    def _flow(self) -> None:
        """Pause reading while the client does not read its answers or has too many queued."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        pause = self._write_paused or len(self._queue) >= _MAX_QUEUED
        if pause != self._read_paused:
            self._read_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()
