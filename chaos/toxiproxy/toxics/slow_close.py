"""slow_close: delays the end of the stream (the close) by `delay` milliseconds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaos.toxiproxy.stream import Chunk, ToxicStub
from chaos.toxiproxy.toxics.base import attribute, register

__all__ = ["SlowClose"]


@register("slow_close")
@dataclass(frozen=True, slots=True)
class SlowClose:
    type_name: ClassVar[str]
    delay_ms: int = attribute("delay")

    async def pipe(self, stub: ToxicStub) -> None:
        while isinstance(item := await stub.read(), Chunk):
            stub.emit(item)
        await stub.hold(item, stub.now_s() + self.delay_ms / 1000)
        stub.close(item)
