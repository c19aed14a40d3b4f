"""One proxied connection: the client socket, the upstream socket, and a link each way.

How a direction ends decides what happens to the sockets:
  EOF   - half-close the destination; once both directions have ended, close both sockets.
          (Toxiproxy closes the destination outright; half-closing keeps request/response
          protocols that shut down their write side working through the proxy.)
  CLOSE - close both sockets (FIN) after the data already written has gone out.
  RESET - close both sockets with RST: SO_LINGER 0, pending data dropped.
"""
from __future__ import annotations

import asyncio
import random
import socket
import struct
from typing import Callable

from chaos.toxiproxy.link import ToxicLink
from chaos.toxiproxy.stream import Direction, End
from chaos.toxiproxy.toxic_collection import ToxicCollection

__all__ = ["Connection"]

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Connection:
    def __init__(
        self,
        client: Stream,
        upstream: Stream,
        *,
        toxics: ToxicCollection,
        rng: random.Random,
        on_closed: Callable[[Connection], None],
    ) -> None:
        self._writers = {Direction.UPSTREAM: upstream[1], Direction.DOWNSTREAM: client[1]}
        self._toxics = toxics
        self._on_closed = on_closed
        self._ended: set[Direction] = set()
        self._closed = False
        self._links = [
            ToxicLink(
                direction,
                toxics.chain(direction),
                source=source,
                dest=self._writers[direction],
                rng=rng,
                on_end=self._link_ended,
            )
            for direction, source in [
                (Direction.UPSTREAM, client[0]),
                (Direction.DOWNSTREAM, upstream[0]),
            ]
        ]

    def start(self) -> None:
        for link in self._links:
            link.start()
            self._toxics.attach(link)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered_bytes(self) -> int:
        return sum(link.buffered_bytes for link in self._links)

    def close(self, *, graceful: bool = True) -> None:
        """Close both sockets: `graceful` lets written data drain first, otherwise drop it
        (the kernel still sends FIN, as when Toxiproxy closes a connection)."""
        if self._closed:
            return
        for writer in self._writers.values():
            if graceful:
                writer.close()
            else:
                writer.transport.abort()
        self._teardown()

    def reset(self) -> None:
        if self._closed:
            return
        for writer in self._writers.values():
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # Linger on with a zero timeout: close() then sends RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._teardown()

    def _link_ended(self, direction: Direction, end: End) -> None:
        if end is End.RESET:
            self.reset()
        elif end is End.CLOSE:
            self.close()
        else:
            self._half_close(direction)

    def _half_close(self, direction: Direction) -> None:
        writer = self._writers[direction]
        if not writer.is_closing() and writer.can_write_eof():
            try:
                writer.write_eof()
            except OSError:
                pass  # the peer is gone already; closing below covers it
        self._ended.add(direction)
        if len(self._ended) == len(Direction):
            self.close()

    def _teardown(self) -> None:
        self._closed = True
        for link in self._links:
            self._toxics.detach(link)
            link.stop()
        self._on_closed(self)
