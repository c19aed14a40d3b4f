"""The Transport seam: how a node's driver hands Raft messages of many groups to other nodes.

A transport moves *batches*: `send(to_node, messages)` carries every message one node has for
another at one moment (messages of many groups), and the receiver is called once per batch. The
driver sends at most one batch per destination per loop turn, which is what coalesces the
heartbeats of many idle groups into a handful of batches per heartbeat interval.

Raft tolerates loss, duplication and reordering *between* batches, so a transport may drop
(e.g. while a peer is down); it must never block the caller and should keep order per pair.

`LoopbackNetwork` is the in-process implementation for tests; `node/` has the gRPC one.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Generic, Protocol, Sequence, TypeVar

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class GroupMessage(Generic[M]):
    """A message for one replication group (`group` names the partition)."""

    group: str
    message: M


Receiver = Callable[[str, Sequence[GroupMessage[M]]], None]
"""Called with (from_node, messages) for each batch that arrives; must not block."""


class Transport(Protocol[M]):
    @property
    def node_id(self) -> str: ...

    def set_receiver(self, receiver: Receiver[M]) -> None: ...

    def send(self, to_node: str, messages: Sequence[GroupMessage[M]]) -> None:
        """Queue one batch for `to_node` and return at once (the batch may be lost)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LoopbackNetwork(Generic[M]):
    """Transports for several nodes in one event loop. Delivery is asynchronous (call_soon, so
    a receiver never runs inside `send`), FIFO per pair, and links can be cut for fault tests."""

    def __init__(self) -> None:
        self._nodes: dict[str, LoopbackTransport[M]] = {}
        self._cut: set[tuple[str, str]] = set()
        self.batches_sent: Counter[tuple[str, str]] = Counter()  # (from, to) -> batches

    def transport(self, node_id: str) -> LoopbackTransport[M]:
        if node_id not in self._nodes:
            self._nodes[node_id] = LoopbackTransport(self, node_id)
        return self._nodes[node_id]

    def cut(self, a: str, b: str) -> None:
        """Drop everything between a and b, both ways, until `heal`."""
        self._cut |= {(a, b), (b, a)}

    def isolate(self, node: str) -> None:
        for other in self._nodes:
            if other != node:
                self.cut(node, other)

    def heal(self) -> None:
        self._cut.clear()

    def _deliver(self, from_node: str, to_node: str, messages: Sequence[GroupMessage[M]]) -> None:
        self.batches_sent[(from_node, to_node)] += 1
        dest = self._nodes.get(to_node)
        if dest is None or (from_node, to_node) in self._cut:
            return
        asyncio.get_running_loop().call_soon(dest._receive, from_node, tuple(messages))


class LoopbackTransport(Generic[M]):
    def __init__(self, network: LoopbackNetwork[M], node_id: str) -> None:
        self._network = network
        self._node_id = node_id
        self._receiver: Receiver[M] | None = None
        self._open = False

    @property
    def node_id(self) -> str:
        return self._node_id

    def set_receiver(self, receiver: Receiver[M]) -> None:
        self._receiver = receiver

    def send(self, to_node: str, messages: Sequence[GroupMessage[M]]) -> None:
        if self._open and messages:
            self._network._deliver(self._node_id, to_node, messages)

    async def start(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    def _receive(self, from_node: str, messages: Sequence[GroupMessage[M]]) -> None:
        # A closed node is a crashed node: what reaches it is lost.
        if self._open and self._receiver is not None:
            self._receiver(from_node, messages)


__all__ = ["GroupMessage", "Receiver", "Transport", "LoopbackNetwork", "LoopbackTransport"]
