"""latency: delays every chunk by `latency` +/- `jitter` milliseconds."""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import ClassVar

from chaos.toxiproxy.stream import Chunk, ToxicStub
from chaos.toxiproxy.toxics.base import attribute, register

__all__ = ["Latency"]


@register("latency")
@dataclass(frozen=True, slots=True)
class Latency:
    type_name: ClassVar[str]
    latency_ms: int = attribute("latency")
    jitter_ms: int = attribute("jitter")

    def delay_s(self, rng: random.Random) -> float:
        jitter_ms = rng.randint(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0
        return max(0, self.latency_ms + jitter_ms) / 1000

    async def pipe(self, stub: ToxicStub) -> None:
        while isinstance(item := await stub.read(), Chunk):
            # Counted from when the chunk was due here, not from now: back-to-back chunks each
            # arrive `latency` late instead of queueing behind one another's delays.
            due_s = item.due_s + self.delay_s(stub.rng)
            await stub.hold(item, due_s)
            stub.emit(replace(item, due_s=due_s))
        stub.close(item)
