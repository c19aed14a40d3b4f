"""What flows through a link, and the stub one toxic runs on for one connection.

A link is a chain of stubs joined by queues (Toxiproxy joins them with Go channels). Each stub has
an input queue it reads from and an output queue it writes to; the link rewires outputs when toxics
are added to or removed from a live connection. Queues are unbounded so that writing never waits
(and so can never be cut in half by an interrupt); the link bounds memory instead by pausing its
reader while too many bytes are inside the chain.
"""
from __future__ import annotations

import asyncio
import enum
import random
from dataclasses import dataclass
from typing import Callable

__all__ = ["Chunk", "Direction", "End", "Item", "ToxicStub", "sleep_until"]


class Direction(enum.Enum):
    """`upstream` is client -> server, `downstream` is server -> client (Toxiproxy's words)."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


class End(enum.Enum):
    """Why one direction of a connection ended. Nothing after an End is ever read."""

    EOF = "eof"  # the source half-closed: half-close the destination and keep the other direction
    CLOSE = "close"  # a toxic ended the connection: close both sockets (FIN), after pending data
    RESET = "reset"  # close both sockets with RST (SO_LINGER 0), dropping pending data


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes read from the source in one read, and the loop time at which they are due at the
    current stage. Latency counts from `due_s`, so a stream is shifted in time, not slowed down."""

    data: bytes
    due_s: float


Item = Chunk | End


def loop_time_s() -> float:
    return asyncio.get_running_loop().time()


async def sleep_until(deadline_s: float) -> None:
    await asyncio.sleep(max(0.0, deadline_s - loop_time_s()))


class ToxicStub:
    """One toxic's place in one link. The toxic's `pipe` reads with `read()`, passes data on with
    `emit()`, ends the stream with `close()`, and keeps per-connection state in `state`."""

    def __init__(
        self,
        output: asyncio.Queue[Item],
        *,
        rng: random.Random,
        release: Callable[[int], None],
    ) -> None:
        self.input: asyncio.Queue[Item] = asyncio.Queue()
        self.output = output  # rewired by the link when the next stage is added or removed
        self.rng = rng
        self.state: object | None = None
        self.closed = False
        self._release = release

    async def read(self) -> Item:
        return await self.input.get()

    def emit(self, chunk: Chunk) -> None:
        if chunk.data:
            self.output.put_nowait(chunk)

    def close(self, end: End) -> None:
        """Pass `end` on; the toxic's pipe must return after this."""
        self.closed = True
        self.output.put_nowait(end)

    def pass_on(self, item: Item) -> None:
        if isinstance(item, Chunk):
            self.emit(item)
        else:
            self.close(item)

    def discard(self, nbytes: int) -> None:
        """Report bytes a toxic dropped: they were counted when read and will never be written,
        and the link's reader pauses while too many bytes are counted."""
        self._release(nbytes)

    def now_s(self) -> float:
        return loop_time_s()

    async def hold(self, item: Item, until_s: float) -> None:
        """Sleep until loop time `until_s` while holding `item`. If the toxic is interrupted
        meanwhile (removed or updated), pass the item on at once: never drop data on the floor."""
        try:
            await sleep_until(until_s)
        except asyncio.CancelledError:
            self.pass_on(item)
            raise
