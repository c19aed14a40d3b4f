"""bandwidth: limits throughput to `rate` KB/s (1 KB = 1000 bytes, as in Toxiproxy); 0 = no limit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaos.toxiproxy.stream import Chunk, ToxicStub
from chaos.toxiproxy.toxics.base import attribute, register

__all__ = ["Bandwidth"]

# Large chunks go out in slices of at most this much sending time, so a slow link trickles
# instead of delivering one big burst at the end (Toxiproxy uses 100 ms too).
SLICE_S = 0.1


@register("bandwidth")
@dataclass(frozen=True, slots=True)
class Bandwidth:
    type_name: ClassVar[str]
    rate_kb_per_s: int = attribute("rate")

    async def pipe(self, stub: ToxicStub) -> None:
        bytes_per_s = self.rate_kb_per_s * 1000
        slice_bytes = max(1, int(bytes_per_s * SLICE_S))
        free_at_s = stub.now_s()  # when the simulated wire has sent everything so far
        while isinstance(item := await stub.read(), Chunk):
            if bytes_per_s == 0:
                stub.emit(item)
                continue
            for start in range(0, len(item.data), slice_bytes):
                piece = item.data[start : start + slice_bytes]
                free_at_s = max(free_at_s, stub.now_s()) + len(piece) / bytes_per_s
                await stub.hold(Chunk(item.data[start:], item.due_s), free_at_s)
                stub.emit(Chunk(piece, free_at_s))
        stub.close(item)
