"""All proxies of a server, by name, with Toxiproxy's create / populate / reset semantics."""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from chaos.toxiproxy.errors import (
    BAD_REQUEST_BODY,
    MISSING_FIELD,
    PROXY_ALREADY_EXISTS,
    PROXY_NOT_FOUND,
)
from chaos.toxiproxy.proxy import DEFAULT_LISTEN_HOST, Proxy, split_host_port

__all__ = ["ProxyCollection", "ProxyFields", "parse_proxy"]

DEFAULT_LISTEN = f"{DEFAULT_LISTEN_HOST}:0"


@dataclass(frozen=True, slots=True)
class ProxyFields:
    """The fields of a create, populate or update request, typed and checked."""

    name: str
    listen: str
    upstream: str
    enabled: bool


def _field(body: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = body.get(key)
    if value is None:  # absent or null: Go's decoder leaves the default in place for both
        return default
    if not isinstance(value, kind):
        raise BAD_REQUEST_BODY(f"{key} must be a {'boolean' if kind is bool else 'string'}")
    return value


def parse_proxy(body: object, *, defaults: Proxy | None = None, where: str = "") -> ProxyFields:
    """Fields from a request body. Without `defaults` (create, populate) name and upstream are
    required; with them (update) missing fields keep the proxy's values."""
    if not isinstance(body, dict):
        raise BAD_REQUEST_BODY("expected a JSON object")
    fields = ProxyFields(
        _field(body, "name", str, defaults.name if defaults else ""),
        _field(body, "listen", str, defaults.listen if defaults else DEFAULT_LISTEN),
        _field(body, "upstream", str, defaults.upstream if defaults else ""),
        _field(body, "enabled", bool, defaults.enabled if defaults else True),
    )
    for key in ("name", "upstream"):
        if not getattr(fields, key):
            raise MISSING_FIELD(key + where)
    for key in ("listen", "upstream"):
        try:
            split_host_port(getattr(fields, key))
        except ValueError as error:
            raise BAD_REQUEST_BODY(str(error)) from None
    return fields


class ProxyCollection:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._proxies: dict[str, Proxy] = {}
        self._lock = asyncio.Lock()  # one structural change at a time, as Toxiproxy's mutex

    def all(self) -> list[Proxy]:
        return list(self._proxies.values())

    def get(self, name: str) -> Proxy:
        try:
            return self._proxies[name]
        except KeyError:
            raise PROXY_NOT_FOUND() from None

    async def create(self, body: object) -> Proxy:
        fields = parse_proxy(body)
        async with self._lock:
            if fields.name in self._proxies:
                raise PROXY_ALREADY_EXISTS()
            return await self._add(fields)

    async def populate(self, body: object) -> list[Proxy]:
        """Create or replace a list of proxies: one whose listen and upstream are unchanged is
        kept as it is (with its toxics); others are replaced. All entries are checked before
        anything changes, as Toxiproxy does."""
        if not isinstance(body, list):
            raise BAD_REQUEST_BODY("expected a JSON array of proxies")
        entries = [parse_proxy(item, where=f" at proxy {i + 1}") for i, item in enumerate(body)]
        names = [entry.name for entry in entries]
        if len(set(names)) != len(names):
            raise BAD_REQUEST_BODY("duplicate proxy name")
        async with self._lock:
            return [await self._add_or_keep(entry) for entry in entries]

    async def update(self, name: str, body: object) -> Proxy:
        async with self._lock:
            proxy = self.get(name)
            fields = parse_proxy(body, defaults=proxy)
            await proxy.update(listen=fields.listen, upstream=fields.upstream, enabled=fields.enabled)
            return proxy

    async def remove(self, name: str) -> None:
        async with self._lock:
            proxy = self.get(name)
            await proxy.stop()
            del self._proxies[name]

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        async with self._lock:
            for proxy in self.all():
                await proxy.start()
                await proxy.toxics.reset()

    async def clear(self) -> None:
        async with self._lock:
            for proxy in self.all():
                await proxy.stop()
            self._proxies.clear()

    async def _add(self, fields: ProxyFields) -> Proxy:
        proxy = Proxy(fields.name, fields.listen, fields.upstream, rng=self._rng)
        if fields.enabled:
            await proxy.start()
        self._proxies[proxy.name] = proxy
        return proxy

    async def _add_or_keep(self, fields: ProxyFields) -> Proxy:
        existing = self._proxies.get(fields.name)
        if existing is not None:
            if (existing.listen, existing.upstream) == (fields.listen, fields.upstream):
                return existing
            await existing.stop()
            del self._proxies[fields.name]
        return await self._add(fields)
