"""A thin DynamoDB-over-HTTP client: one aiohttp session, pre-built bodies in, `Reply` out.

No retries, on purpose: a load generator reports what the endpoint did (throttles, timeouts,
disconnects) instead of hiding it the way SDK retries do.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from chaos.workload.auth import HeaderSource
from chaos.workload.bodies import error_type

__all__ = ["Reply", "DynamoClient"]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int  # HTTP status; 0 when no response arrived
    body: bytes
    error: str | None = None  # DynamoDB error type, or the transport exception's name
    transport: bool = False  # True: no (complete) HTTP response

    @property
    def ok(self) -> bool:
        return self.error is None

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class DynamoClient:
    """Use inside a running event loop: `async with DynamoClient(...) as client`."""

    def __init__(self, endpoint: str, headers: HeaderSource, connections: int,
                 timeout_s: float) -> None:
        self._url = URL(endpoint)  # parsed once, not per request
        self._headers = headers
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> DynamoClient:
        connector = aiohttp.TCPConnector(limit=self._connections,
                                         limit_per_host=self._connections)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False, skip_auto_headers=("Accept", "Accept-Encoding"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, operation: str, body: bytes) -> Reply:
        session = self._session
        assert session is not None, "DynamoClient used outside `async with`"
        try:
            async with session.post(self._url, data=body,
                                    headers=self._headers.headers(operation, body)) as resp:
                payload = await resp.read()
                status = resp.status
        except asyncio.TimeoutError:
            return Reply(0, b"", "Timeout", transport=True)
        except (aiohttp.ClientError, OSError) as exc:
            return Reply(0, b"", type(exc).__name__, transport=True)
        if status == 200:
            return Reply(status, payload)
        return Reply(status, payload, error_type(status, payload))

    async def call_json(self, operation: str, document: dict[str, Any]) -> Reply:
        return await self.call(operation, orjson.dumps(document))
