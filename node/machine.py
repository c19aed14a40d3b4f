"""The node's one StateMachine for the driver: the `meta` group goes to the MetaMachine, every
partition group to the ItemMachine."""
from __future__ import annotations

from typing import Sequence

from node.items import ItemMachine
from dynalab.ring import META_GROUP
from node.meta import MetaMachine
from replication.types import Entry, Snapshot

__all__ = ["NodeMachine"]


class NodeMachine:
    def __init__(self, items: ItemMachine, meta: MetaMachine) -> None:
        self.items = items
        self.meta = meta

    def apply(self, group: str, entries: Sequence[Entry]) -> Sequence[object]:
        if group == META_GROUP:
            return self.meta.apply(group, entries)
        return self.items.apply(group, entries)

    def restore(self, group: str, snapshot: Snapshot) -> None:
        if group == META_GROUP:
            self.meta.restore(group, snapshot)
        else:
            self.items.restore(group, snapshot)

    def snapshot(self, group: str) -> bytes:
        if group == META_GROUP:
            return self.meta.snapshot(group)
        return self.items.snapshot(group)
