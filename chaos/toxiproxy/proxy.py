"""A proxy: listens on `listen`, connects each client to `upstream`, runs its toxics in between."""
from __future__ import annotations

import asyncio
import ipaddress
import random
import socket

from chaos.toxiproxy.connection import Connection
from chaos.toxiproxy.errors import ApiError
from chaos.toxiproxy.toxic_collection import ToxicCollection

__all__ = ["DEFAULT_LISTEN_HOST", "Proxy", "join_host_port", "split_host_port"]

# An empty listen host means "all interfaces" to Toxiproxy; dynalab binds loopback unless an
# address (0.0.0.0, ::) is asked for explicitly.
DEFAULT_LISTEN_HOST = "127.0.0.1"
UPSTREAM_CONNECT_TIMEOUT_S = 10.0


def split_host_port(address: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' -> (host, port); ValueError if malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ipv4(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


async def _resolve_one(host: str, port: int) -> str:
    """One address for `host`, IPv4 first. Binding a name like 'localhost' to all its
    addresses would give each its own ephemeral port, and `listen` can only show one."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    return sorted(addresses, key=lambda a: not _is_ipv4(a))[0]


class Proxy:
    def __init__(self, name: str, listen: str, upstream: str, *, rng: random.Random) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicCollection()
        self._rng = rng
        self._server: asyncio.Server | None = None
        self._generation = 0  # bumped by stop(): connects that straddle a stop are dropped
        self._connections: set[Connection] = set()

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [spec.to_json() for spec in self.toxics.specs()],
        }

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def buffered_bytes(self) -> int:
        """Bytes inside this proxy's links: read, not yet written (held by toxics or queued)."""
        return sum(connection.buffered_bytes for connection in self._connections)

    async def start(self) -> None:
        """Start listening; `listen` then shows the bound address (the real port for port 0).
        Raises ApiError 500 when the address cannot be bound, as Toxiproxy answers then."""
        if self.enabled:
            return
        try:
            host, port = split_host_port(self.listen)
            address = await _resolve_one(host or DEFAULT_LISTEN_HOST, port)
            self._server = await asyncio.start_server(self._accept, address, port)
        except (OSError, ValueError) as error:
            raise ApiError(f"listen tcp {self.listen}: {error}", 500) from None
        bound = self._server.sockets[0].getsockname()
        self.listen = join_host_port(bound[0], bound[1])
        self.enabled = True

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if not self.enabled:
            return
        self.enabled = False
        self._generation += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._connections):
            connection.close(graceful=False)

    async def update(self, *, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's rules: a new listen or upstream restarts the proxy (dropping its
        connections); then `enabled` starts or stops it."""
        if listen != self.listen or upstream != self.upstream:
            await self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled:
            await self.start()
        else:
            await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self._generation
        try:
            host, port = split_host_port(self.upstream)
            upstream = await asyncio.wait_for(
                asyncio.open_connection(host, port), UPSTREAM_CONNECT_TIMEOUT_S
            )
        except (OSError, ValueError, asyncio.TimeoutError):
            writer.transport.abort()  # as Toxiproxy does when the upstream is unreachable
            return
        if generation != self._generation:
            writer.transport.abort()
            upstream[1].transport.abort()
            return
        connection = Connection(
            (reader, writer),
            upstream,
            toxics=self.toxics,
            rng=self._rng,
            on_closed=self._connections.discard,
        )
        self._connections.add(connection)
        connection.start()
