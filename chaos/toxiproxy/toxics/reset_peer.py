"""reset_peer: resets the connection (TCP RST) `timeout` milliseconds after data first arrives."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from chaos.toxiproxy.stream import Chunk, End, ToxicStub
from chaos.toxiproxy.toxics.base import attribute, register

__all__ = ["ResetPeer"]


@register("reset_peer")
@dataclass(frozen=True, slots=True)
class ResetPeer:
    type_name: ClassVar[str]
    timeout_ms: int = attribute("timeout")

    async def pipe(self, stub: ToxicStub) -> None:
        # As in Toxiproxy, the first data (or end of stream) arms it, and that data is dropped:
        # an RST discards whatever the peer had not yet acknowledged.
        item = await stub.read()
        if isinstance(item, Chunk):
            stub.discard(len(item.data))
        await asyncio.sleep(self.timeout_ms / 1000)
        stub.close(End.RESET)
