"""noop: passes everything through. Links start with a hidden one (the reader's fixed entry
point), and it stands in for a toxic whose toxicity roll said "not on this connection"."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaos.toxiproxy.stream import Chunk, ToxicStub
from chaos.toxiproxy.toxics.base import register

__all__ = ["Noop"]


@register("noop")
@dataclass(frozen=True, slots=True)
class Noop:
    type_name: ClassVar[str]

    async def pipe(self, stub: ToxicStub) -> None:
        while isinstance(item := await stub.read(), Chunk):
            stub.emit(item)
        stub.close(item)
