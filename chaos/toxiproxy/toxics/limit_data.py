"""limit_data: closes the connection once `bytes` bytes have gone through in its direction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaos.toxiproxy.stream import Chunk, End, ToxicStub
from chaos.toxiproxy.toxics.base import attribute, register

__all__ = ["LimitData", "LimitDataState"]


@dataclass(slots=True)
class LimitDataState:
    """Bytes passed so far on one connection; kept when the limit is updated."""

    sent_bytes: int = 0


@register("limit_data")
@dataclass(frozen=True, slots=True)
class LimitData:
    type_name: ClassVar[str]
    limit_bytes: int = attribute("bytes")

    def new_state(self) -> LimitDataState:
        return LimitDataState()

    async def pipe(self, stub: ToxicStub) -> None:
        state = stub.state
        assert isinstance(state, LimitDataState)
        # As in Toxiproxy the check follows a read, so `bytes: 0` closes on the first data.
        while isinstance(item := await stub.read(), Chunk):
            allowed = item.data[: max(0, self.limit_bytes - state.sent_bytes)]
            stub.discard(len(item.data) - len(allowed))
            stub.emit(Chunk(allowed, item.due_s))
            state.sent_bytes += len(allowed)
            if state.sent_bytes >= self.limit_bytes:
                stub.close(End.CLOSE)
                return
        stub.close(item)
