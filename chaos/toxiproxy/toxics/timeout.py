"""timeout: stops all data, and closes the connection after `timeout` milliseconds (0 = never).

Like Toxiproxy's, it reads nothing, so data backs up behind it as behind a peer that stopped
reading; the link then pauses its reader, which pushes back on the sender through TCP."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from chaos.toxiproxy.stream import End, ToxicStub
from chaos.toxiproxy.toxics.base import attribute, register

__all__ = ["Timeout"]


@register("timeout")
@dataclass(frozen=True, slots=True)
class Timeout:
    type_name: ClassVar[str]
    timeout_ms: int = attribute("timeout")

    async def pipe(self, stub: ToxicStub) -> None:
        if self.timeout_ms == 0:
            await asyncio.Event().wait()  # holds until the toxic is removed or updated
        else:
            await asyncio.sleep(self.timeout_ms / 1000)
            stub.close(End.CLOSE)

    def cleanup(self, stub: ToxicStub) -> None:
        # Toxiproxy closes the connection when a timeout toxic is removed: whoever was waiting
        # has given up, and resuming a stream that stalled mid-message would mislead the test.
        stub.close(End.CLOSE)
