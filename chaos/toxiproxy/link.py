"""ToxicLink: one direction of one connection, as in Toxiproxy.

    source socket -> reader -> [noop] -> toxic -> toxic -> ... -> writer -> destination socket

Each stage is a task running one toxic's `pipe` on its own stub. The hidden noop at the head is
the reader's fixed entry point, so every real toxic always has a previous stage to rewire.
Whether a toxic applies to this connection is rolled once per (connection, toxic) against its
toxicity, and again when the toxic is updated; a toxic that does not apply runs as a noop.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from chaos.toxiproxy.stream import Chunk, Direction, End, Item, ToxicStub, loop_time_s
from chaos.toxiproxy.toxic_collection import ToxicSpec
from chaos.toxiproxy.toxics import CleanupToxic
from chaos.toxiproxy.toxics.noop import Noop

__all__ = ["BUFFER_LIMIT_BYTES", "READ_SIZE_BYTES", "ToxicLink"]

log = logging.getLogger(__name__)

READ_SIZE_BYTES = 64 * 1024
# Bytes read but not yet written (or dropped) above which the reader stops reading, so a slow
# toxic pushes back on the sender through TCP instead of buffering without bound.
BUFFER_LIMIT_BYTES = 1024 * 1024
_NOOP = Noop()


@dataclass(slots=True, eq=False)
class _Stage:
    spec: ToxicSpec | None  # None for the hidden head noop
    stub: ToxicStub
    applies: bool
    task: asyncio.Task[None] | None = None

    @property
    def toxic(self) -> Any:
        return self.spec.settings if self.spec is not None and self.applies else _NOOP


class ToxicLink:
    def __init__(
        self,
        direction: Direction,
        specs: Sequence[ToxicSpec],
        *,
        source: asyncio.StreamReader,
        dest: asyncio.StreamWriter,
        rng: random.Random,
        on_end: Callable[[Direction, End], None],
    ) -> None:
        self.direction = direction
        self._source = source
        self._dest = dest
        self._rng = rng
        self._on_end = on_end
        self._sink: asyncio.Queue[Item] = asyncio.Queue()
        self._in_flight_bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self._stages = [_Stage(None, self._stub(self._sink), applies=False)]
        self._io_tasks: list[asyncio.Task[None]] = []
        for spec in specs:
            self._append(spec)

    @property
    def buffered_bytes(self) -> int:
        """Bytes read from the source and not yet written or dropped."""
        return self._in_flight_bytes

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for stage in self._stages:
            self._run(stage)
        self._io_tasks = [self._spawn(self._read()), self._spawn(self._write())]

    def stop(self) -> None:
        """Cancel every task of the link; the sockets belong to the connection."""
        for task in [*self._io_tasks, *(s.task for s in self._stages if s.task is not None)]:
            task.cancel()

    # -- changes from the toxic collection ---------------------------------------------------

    def add(self, spec: ToxicSpec) -> None:
        # Writing into a queue never waits, so redirecting the last stage's output is atomic:
        # whatever it emits from now on, including data it is holding, meets the new toxic.
        self._run(self._append(spec))

    async def update(self, spec: ToxicSpec) -> None:
        stage = self._find(spec.name)
        await self._interrupt(stage)
        stage.spec = spec
        stage.applies = self._rng.random() < spec.toxicity
        if not stage.stub.closed:
            self._run(stage)

    async def remove(self, name: str) -> None:
        stage = self._find(name)
        await self._interrupt(stage)
        if not stage.stub.closed and isinstance(stage.toxic, CleanupToxic):
            stage.toxic.cleanup(stage.stub)
        # What the previous stage already handed over comes after what this one passed on.
        while not stage.stub.input.empty():
            stage.stub.output.put_nowait(stage.stub.input.get_nowait())
        index = self._stages.index(stage)
        self._stages[index - 1].stub.output = stage.stub.output
        del self._stages[index]

    # -- stages ------------------------------------------------------------------------------

    def _stub(self, output: asyncio.Queue[Item]) -> ToxicStub:
        return ToxicStub(output, rng=self._rng, release=self._release)

    def _append(self, spec: ToxicSpec) -> _Stage:
        last = self._stages[-1]
        stage = _Stage(spec, self._stub(last.stub.output), self._rng.random() < spec.toxicity)
        stage.stub.state = spec.new_state()
        last.stub.output = stage.stub.input
        self._stages.append(stage)
        return stage

    def _find(self, name: str) -> _Stage:
        return next(s for s in self._stages if s.spec is not None and s.spec.name == name)

    def _run(self, stage: _Stage) -> None:
        stage.task = self._spawn(stage.toxic.pipe(stage.stub))

    @staticmethod
    async def _interrupt(stage: _Stage) -> None:
        """Stop the stage's toxic; it passes on anything it holds as it stops."""
        if stage.task is not None and not stage.task.done():
            stage.task.cancel()
            await asyncio.wait([stage.task])

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(self._check_failed)
        return task

    def _check_failed(self, task: asyncio.Task[None]) -> None:
        # A toxic that crashes would stall the stream forever; end the connection instead.
        if not task.cancelled() and task.exception() is not None:
            log.error("toxiproxy link task failed", exc_info=task.exception())
            self._on_end(self.direction, End.CLOSE)

    # -- socket I/O --------------------------------------------------------------------------

    def _release(self, nbytes: int) -> None:
        self._in_flight_bytes -= nbytes
        if self._in_flight_bytes < BUFFER_LIMIT_BYTES:
            self._room.set()

    async def _read(self) -> None:
        head = self._stages[0].stub.input
        end = End.EOF
        try:
            while data := await self._source.read(READ_SIZE_BYTES):
                self._in_flight_bytes += len(data)
                head.put_nowait(Chunk(data, loop_time_s()))
                if self._in_flight_bytes >= BUFFER_LIMIT_BYTES:
                    self._room.clear()
                    await self._room.wait()
        except ConnectionResetError:
            end = End.RESET
        except OSError:
            end = End.CLOSE
        head.put_nowait(end)

    async def _write(self) -> None:
        while isinstance(item := await self._sink.get(), Chunk):
            if self._dest.is_closing():
                item = End.CLOSE
                break
            self._dest.write(item.data)
            try:
                await self._dest.drain()
            except OSError:
                item = End.CLOSE
                break
            self._release(len(item.data))
        self._on_end(self.direction, item)
