"""The hash ring and AZ-aware placement: which nodes hold the replicas of a key.

The model is Cassandra's: every node owns `vnodes` tokens on a 64-bit ring; a *partition* is one
ring range (previous token, token]; its replicas are found by walking clockwise from the range's
end and taking the first node of each distinct AZ (NetworkTopologyStrategy with racks = AZs).
Placement is a pure function of (token, ring snapshot, topology): no I/O, no clock, no randomness,
so routers, nodes and tests agree on it without talking.

Vnode tokens come from blake2b, never Python's `hash()` (salted per process, so two processes
would disagree). A key's token is `dynalab.keys.partition_token` (same hash family, its own
input encoding); this module only deals in tokens.

Each region has its own ring (regions are independent clusters joined by replicators); build one
with `RingSnapshot.for_region`.
"""
from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

from dynalab.topology import Topology

__all__ = [
    "Partition", "PartitionMap", "RING_SIZE", "RingSnapshot", "node_tokens", "ownership",
    "partition_id", "partitions", "replica_ownership", "replicas_for", "META_GROUP",
    "meta_voters",
]

RING_SIZE = 1 << 64  # tokens are 0 .. RING_SIZE - 1

# Domain separation: vnode tokens are not the hash of anything a key could encode to.
_VNODE_PERSON = b"dynalab-vnode"


def node_tokens(node_id: str, vnodes: int) -> tuple[int, ...]:
    """The tokens of a node: a function of (node id, vnode index) only, so a node keeps its
    tokens across restarts and every process computes the same ones."""
    return tuple(_hash64(f"{node_id}\x00{index}".encode()) for index in range(vnodes))


def _hash64(data: bytes) -> int:
    digest = hashlib.blake2b(data, digest_size=8, person=_VNODE_PERSON).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class RingSnapshot:
    """The ring at one membership epoch: `tokens` sorted ascending, `owners[i]` owns `tokens[i]`."""

    tokens: tuple[int, ...]
    owners: tuple[str, ...]
    epoch: int = 0

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.owners):
            raise ValueError("a ring needs exactly one owner per token")
        if not self.tokens:
            raise ValueError("a ring needs at least one token")
        if any(a >= b for a, b in zip(self.tokens, self.tokens[1:])):
            # Also rejects duplicate tokens: two owners of one position would make placement
            # depend on tie-breaking. With blake2b-64 this needs ~2^32 vnodes to happen by chance.
            raise ValueError("ring tokens must be strictly ascending")
        if not all(0 <= t < RING_SIZE for t in (self.tokens[0], self.tokens[-1])):
            raise ValueError("ring tokens must be in 0 .. 2**64 - 1")

    @classmethod
    def build(cls, node_ids: Iterable[str], vnodes: int, epoch: int = 0) -> RingSnapshot:
        """The ring of these nodes (order does not matter)."""
        pairs = sorted((token, node_id) for node_id in set(node_ids)
                       for token in node_tokens(node_id, vnodes))
        return cls(tuple(t for t, _ in pairs), tuple(n for _, n in pairs), epoch)

    @classmethod
    def for_region(cls, topology: Topology, region: str, epoch: int = 0) -> RingSnapshot:
        """The ring of every node the topology places in `region`."""
        nodes = topology.region(region).nodes
        return cls.build((node.id for node in nodes), topology.vnodes, epoch)

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.owners)))

    def index_for(self, token: int) -> int:
        """Index of the token that ends the range holding `token`: the first token >= it,
        wrapping past the top of the ring to the first token."""
        return bisect.bisect_left(self.tokens, token) % len(self.tokens)


@dataclass(frozen=True)
class Partition:
    """The ring range (start, end] and its replicas, in preference order (first = the primary,
    the range owner). `start == end` means the whole ring (a ring with one token).

    The id is the end token: when a new token splits a range, the upper part keeps its id and only
    the new lower part gets a new one, so ids are stable for ranges that did not change end."""

    id: str
    start: int
    end: int
    replicas: tuple[str, ...]

    def contains(self, token: int) -> bool:
        if self.start < self.end:
            return self.start < token <= self.end
        return token > self.start or token <= self.end  # wraps past 0 (or the whole ring)

    @property
    def size(self) -> int:
        """How many tokens the range holds."""
        return (self.end - self.start) % RING_SIZE or RING_SIZE


def partition_id(end_token: int) -> str:
    return f"p{end_token:016x}"


def replicas_for(token: int, ring: RingSnapshot, topology: Topology) -> tuple[str, ...]:
    """The replica set of `token`: clockwise from the range holding it, the first node of each
    distinct AZ, until `replication_factor` nodes. Like Cassandra, if the ring has fewer AZs than
    that, the set is topped up with skipped nodes in ring order (same AZ twice beats too few
    replicas); it is shorter only when the ring has fewer nodes."""
    wanted = topology.replication_factor
    first = ring.index_for(token)
    chosen: list[str] = []
    skipped: list[str] = []
    azs_seen: set[str] = set()
    for step in range(len(ring.tokens)):  # one lap at most
        owner = ring.owners[(first + step) % len(ring.tokens)]
        if owner in chosen or owner in skipped:
            continue
        az = topology.az_of(owner)
        if az in azs_seen:
            skipped.append(owner)
            continue
        chosen.append(owner)
        azs_seen.add(az)
        if len(chosen) == wanted:
            return tuple(chosen)
    return tuple(chosen + skipped[:wanted - len(chosen)])


def partitions(ring: RingSnapshot, topology: Topology) -> list[Partition]:
    """Every range of the ring with its replicas, in token order."""
    tokens = ring.tokens
    return [Partition(partition_id(end), tokens[i - 1], end, replicas_for(end, ring, topology))
            for i, end in enumerate(tokens)]


@dataclass(frozen=True)
class PartitionMap:
    """The partitions of one ring epoch, with lookup by token (what a router caches)."""

    epoch: int
    partitions: tuple[Partition, ...]

    @classmethod
    def build(cls, ring: RingSnapshot, topology: Topology) -> PartitionMap:
        return cls(ring.epoch, tuple(partitions(ring, topology)))

    @cached_property
    def _ends(self) -> tuple[int, ...]:
        return tuple(p.end for p in self.partitions)

    def for_token(self, token: int) -> Partition:
        """The partition whose range holds `token` (bisect on the range ends)."""
        return self.partitions[bisect.bisect_left(self._ends, token) % len(self._ends)]


def ownership(ring: RingSnapshot) -> dict[str, float]:
    """Fraction of the ring each node owns as primary (the balance of the hash)."""
    share = dict.fromkeys(ring.nodes, 0)
    for i, end in enumerate(ring.tokens):
        share[ring.owners[i]] += (end - ring.tokens[i - 1]) % RING_SIZE or RING_SIZE
    return {node: size / RING_SIZE for node, size in share.items()}


def replica_ownership(parts: Sequence[Partition]) -> dict[str, float]:
    """Fraction of the ring each node holds a replica of (what it stores and serves)."""
    share: dict[str, int] = {}
    for part in parts:
        for node in part.replicas:
            share[node] = share.get(node, 0) + part.size
    return {node: size / RING_SIZE for node, size in sorted(share.items())}


META_GROUP = "meta"


def meta_voters(topology: Topology, region: str) -> tuple[str, ...]:
    """The metadata group's voters: the first node (by id) of each AZ of the region, in AZ order
    (docs/cluster.md)."""
    return tuple(min(node.id for node in az.nodes) for az in topology.region(region).azs)
