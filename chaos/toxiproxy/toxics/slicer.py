"""slicer: cuts each chunk into pieces of about `average_size` +/- `size_variation` bytes, with
`delay` microseconds between pieces, to exercise readers that assume one read = one message."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from chaos.toxiproxy.stream import Chunk, ToxicStub
from chaos.toxiproxy.toxics.base import attribute, register

__all__ = ["Slicer"]


@register("slicer")
@dataclass(frozen=True, slots=True)
class Slicer:
    type_name: ClassVar[str]
    average_size: int = attribute("average_size")
    size_variation: int = attribute("size_variation")
    delay_us: int = attribute("delay")

    def __post_init__(self) -> None:
        if self.average_size < 1:
            raise ValueError("attribute 'average_size' must be >= 1")
        if self.size_variation >= self.average_size:
            raise ValueError("attribute 'size_variation' must be less than 'average_size'")

    def pieces(self, size: int, rng: random.Random) -> list[tuple[int, int]]:
        """[start, end) bounds covering [0, size). Halves around the middle +/- variation until
        pieces are small enough, as Toxiproxy does, so neither end tends to get the odd piece."""
        done: list[tuple[int, int]] = []
        todo = [(0, size)]
        # Every split leaves two non-empty halves (size > average + variation >= 2 * variation
        # + 1), so this ends after fewer than `size` splits.
        while todo:
            start, end = todo.pop()
            if end - start - self.average_size <= self.size_variation:
                done.append((start, end))
                continue
            spread = self.size_variation
            mid = start + (end - start) // 2 + (rng.randint(-spread, spread - 1) if spread else 0)
            todo += [(mid, end), (start, mid)]
        return done

    async def pipe(self, stub: ToxicStub) -> None:
        while isinstance(item := await stub.read(), Chunk):
            for start, end in self.pieces(len(item.data), stub.rng):
                stub.emit(Chunk(item.data[start:end], item.due_s))
                if end < len(item.data):
                    rest = Chunk(item.data[end:], item.due_s)
                    await stub.hold(rest, stub.now_s() + self.delay_us / 1_000_000)
        stub.close(item)
