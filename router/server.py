"""The DynamoDB JSON protocol over HTTP (aiohttp), and THE place errors become wire errors.

`POST /` with `X-Amz-Target: DynamoDB_20120810.<Operation>` (or, for the Streams API,
`DynamoDBStreams_20120810.<Operation>`) and a JSON body; the answer carries
DynamoDB's headers (`x-amzn-RequestId`, `x-amz-crc32` of the body bytes, Content-Type
application/x-amz-json-1.0). Any well-formed SigV4 `Authorization` header is accepted (DESIGN.md:
no authentication yet); a missing or malformed one is refused as DynamoDB refuses it.

`error_response` maps every exception to (status, body): a dynalab.errors type to its
`http_status` and `to_wire()`; anything else to a 500 InternalServerError with a log line and no
detail for the client.
"""
from __future__ import annotations

import logging
import random
import re
import zlib
from typing import Any, Mapping

import orjson
from aiohttp import web

from dynalab.errors import (ClientError, DynalabError, SerializationException, ServerError,
                            UnknownOperationException, ValidationException)
from router.app import Router

__all__ = ["make_app", "error_response", "MissingAuthenticationTokenException",
           "IncompleteSignatureException", "TARGET_PREFIX", "STREAMS_TARGET_PREFIX",
           "MAX_REQUEST_BYTES"]

log = logging.getLogger(__name__)

TARGET_PREFIX = "DynamoDB_20120810."
STREAMS_TARGET_PREFIX = "DynamoDBStreams_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
MAX_REQUEST_BYTES = 17 * 1024 * 1024  # a full BatchWriteItem (25 x 400 KB) plus JSON overhead
_ROUTER_KEY = web.AppKey("router", Router)
_SIGV4_PARTS = ("Credential", "SignedHeaders", "Signature")
_ids = random.Random()  # seeded from urandom at import
_SIGV4_RE = re.compile(r"AWS4-HMAC-SHA256\s+(.*)", re.DOTALL)


class MissingAuthenticationTokenException(ClientError):
    # Lives here, not in dynalab.errors, because only the HTTP front door can raise it.
    aws_type = "MissingAuthenticationTokenException"


class IncompleteSignatureException(ClientError):
    aws_type = "IncompleteSignatureException"


def make_app(router: Router) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[_ROUTER_KEY] = router
    app.router.add_post("/", _handle)
    app.router.add_get("/", _health)
    return app


async def _health(request: web.Request) -> web.Response:
    # What DynamoDB answers to a plain GET of its endpoint.
    router = request.app[_ROUTER_KEY]
    return web.Response(text=f"healthy: dynamodb.{router.region}.amazonaws.com ")


async def _handle(request: web.Request) -> web.Response:
    router = request.app[_ROUTER_KEY]
    operation = "?"
    try:
        _check_authorization(request.headers)
        operation, streams = _operation(request.headers)
        body = _parse_body(await _read(request))
        status, payload = 200, orjson.dumps(await router.handle(operation, body, streams=streams))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a wire error right here
        status, payload = error_response(exc, operation)
    return web.Response(status=status, body=payload, headers={
        "x-amzn-RequestId": _request_id(),
        "x-amz-crc32": str(zlib.crc32(payload)),
        "Content-Type": CONTENT_TYPE,
        "Server": "Server",  # what DynamoDB sends, rather than aiohttp's version string
    })


def error_response(exc: BaseException, operation: str = "?") -> tuple[int, bytes]:
    """The HTTP status and body for an exception raised while serving `operation`."""
    if isinstance(exc, DynalabError):
        if exc.http_status >= 500:
            log.warning("%s failed: %s: %s", operation, exc.aws_type, exc.message)
        return exc.http_status, orjson.dumps(exc.to_wire())
    log.error("%s failed with an unexpected error", operation, exc_info=exc)
    internal = ServerError("Internal server error")
    return internal.http_status, orjson.dumps(internal.to_wire())


def _check_authorization(headers: Mapping[str, str]) -> None:
    value = headers.get("Authorization")
    if not value:
        raise MissingAuthenticationTokenException("Request is missing Authentication Token")
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


def _operation(headers: Mapping[str, str]) -> tuple[str, bool]:
    """(operation, whether it is a DynamoDB Streams one) from X-Amz-Target."""
    target = headers.get("X-Amz-Target", "")
    for prefix, streams in ((TARGET_PREFIX, False), (STREAMS_TARGET_PREFIX, True)):
        if target.startswith(prefix):
            return target[len(prefix):], streams
    raise UnknownOperationException(f"Unknown operation: {target or '(no X-Amz-Target)'}")


async def _read(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ValidationException(
            f"Request size exceeds the maximum of {MAX_REQUEST_BYTES} bytes") from None


def _parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SerializationException("Could not parse the request body as JSON") from None
    if isinstance(body, list):
        raise SerializationException("Start of list found where not expected")
    if not isinstance(body, dict):
        raise SerializationException("Unexpected value type in payload")
    return body


def _request_id() -> str:
    # DynamoDB's request ids: 52 upper-case characters of a base32hex-like alphabet. Hex digits
    # are in it; a request id needs to be unique, not secret, so no urandom syscall and no
    # b32encode (a Python loop) per request (docs/performance.md).
    return f"{_ids.getrandbits(208):052X}"
