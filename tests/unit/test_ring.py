"""The ring and AZ-aware placement: properties that must hold for any membership."""
from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynalab.ring import (
    RING_SIZE, Partition, PartitionMap, RingSnapshot, node_tokens, ownership, partition_id,
    partitions, replica_ownership, replicas_for,
)
from dynalab.topology import AZ, NodeSpec, Region, RouterSpec, Topology


def make_topology(az_sizes: list[int], vnodes: int = 8, salt: str = "", rf: int = 3) -> Topology:
    """One region "r" with len(az_sizes) AZs holding that many nodes each."""
    azs = tuple(AZ(f"r{chr(97 + a)}", tuple(NodeSpec(f"{salt}{chr(97 + a)}{n}", "r", f"r{chr(97 + a)}")
                                            for n in range(size)))
                for a, size in enumerate(az_sizes))
    return Topology((Region("r", azs, (RouterSpec("router", "r", "ra"),)),), vnodes=vnodes,
                    replication_factor=rf)


az_layouts = st.lists(st.integers(1, 4), min_size=3, max_size=5)
salts = st.text("xyz0123456789", max_size=4)  # varies node ids, hence the tokens
tokens = st.one_of(st.integers(0, RING_SIZE - 1), st.sampled_from([0, 1, RING_SIZE - 1]))


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Topology, RingSnapshot]:
    topology = make_topology(draw(az_layouts), draw(st.integers(1, 16)), draw(salts))
    return topology, RingSnapshot.for_region(topology, "r", epoch=draw(st.integers(0, 5)))


def test_hashes_are_pinned() -> None:
    # Changing these re-places every key of every existing data dir: it must never happen by
    # accident (e.g. switching to Python's per-process salted hash()).
    assert node_tokens("use1-a1", 2) == (0x075C1EDE5C0565ED, 0x1378EA6670B60CDD)


def test_tokens_are_64_bit_and_distinct_per_vnode() -> None:
    toks = node_tokens("n1", 64)
    assert len(set(toks)) == 64 and all(0 <= t < RING_SIZE for t in toks)
    assert node_tokens("n1", 8) == toks[:8]  # vnode i's token does not depend on the count


@settings(max_examples=150, deadline=None)
@given(clusters(), st.lists(tokens, min_size=1, max_size=20))
def test_every_token_is_in_exactly_one_partition(cluster, probes: list[int]) -> None:
    topology, ring = cluster
    parts = partitions(ring, topology)
    pmap = PartitionMap.build(ring, topology)
    assert len(parts) == len(ring.tokens) and pmap.epoch == ring.epoch
    assert sum(p.size for p in parts) == RING_SIZE  # the ranges tile the ring
    for token in probes + list(ring.tokens[:3]) + [t + 1 for t in ring.tokens[:3]]:
        token %= RING_SIZE
        holders = [p for p in parts if p.contains(token)]
        assert len(holders) == 1
        assert pmap.for_token(token) == holders[0]
    assert len({p.id for p in parts}) == len(parts)


@settings(max_examples=150, deadline=None)
@given(clusters(), tokens)
def test_replicas_are_in_distinct_azs_led_by_the_range_owner(cluster, token: int) -> None:
    topology, ring = cluster
    replicas = replicas_for(token, ring, topology)
    assert len(replicas) == 3 and len(set(replicas)) == 3
    assert len({topology.az_of(node) for node in replicas}) == 3
    assert replicas[0] == ring.owners[ring.index_for(token)]
    assert replicas == pmap_replicas(ring, topology, token)


def pmap_replicas(ring: RingSnapshot, topology: Topology, token: int) -> tuple[str, ...]:
    return PartitionMap.build(ring, topology).for_token(token).replicas


@settings(max_examples=100, deadline=None)
@given(az_layouts, st.integers(1, 16), salts, st.randoms(use_true_random=False))
def test_placement_is_a_pure_function_of_membership(layout, vnodes, salt, rnd: random.Random) -> None:
    topology = make_topology(layout, vnodes, salt)
    ids = [n.id for n in topology.nodes]
    shuffled = ids[:]
    rnd.shuffle(shuffled)
    first = RingSnapshot.build(ids, vnodes)
    again = RingSnapshot.build(shuffled + ids[:1], vnodes)  # order and repeats do not matter
    assert first == again
    assert partitions(first, topology) == partitions(again, topology)


@settings(max_examples=100, deadline=None)
@given(az_layouts, st.integers(1, 16), salts, st.integers(0, 4), st.lists(tokens, max_size=30))
def test_adding_a_node_moves_only_the_ranges_next_to_its_tokens(layout, vnodes, salt, az,
                                                                 probes) -> None:
    az %= len(layout)
    before = make_topology(layout, vnodes, salt)
    grown = list(layout)
    grown[az] += 1
    after = make_topology(grown, vnodes, salt)
    new_node = next(n.id for n in after.nodes if n.id not in {m.id for m in before.nodes})
    old_ring = RingSnapshot.for_region(before, "r")
    new_ring = RingSnapshot.for_region(after, "r")
    assert set(new_ring.tokens) - set(old_ring.tokens) == set(node_tokens(new_node, vnodes))
    # Exactly the new node's ranges change primary (the owner is constant over a range, so
    # checking each range's end covers every token); the keys moved are the new node's share.
    for part in partitions(new_ring, after):
        if part.replicas[0] != new_node:
            assert old_ring.owners[old_ring.index_for(part.end)] == part.replicas[0]
    for token in probes + [t % RING_SIZE for t in node_tokens(new_node, vnodes)]:
        old = replicas_for(token, old_ring, before)
        new = replicas_for(token, new_ring, after)
        if new != old:
            # The newcomer took the place of one node (of its own AZ); nobody else moved.
            assert new_node in new
            assert set(new) - {new_node} <= set(old) and len(set(old) - set(new)) == 1
        if old[0] != new[0]:
            assert new[0] == new_node


def test_partition_ids_stay_with_the_range_end() -> None:
    topology = make_topology([2, 2, 2])
    old_ring = RingSnapshot.for_region(topology, "r")
    grown = make_topology([3, 2, 2])
    new_ring = RingSnapshot.for_region(grown, "r")
    old_ids = {p.id for p in partitions(old_ring, topology)}
    new_ids = {p.id for p in partitions(new_ring, grown)}
    assert old_ids <= new_ids  # no range lost its id; the new node's ranges are new ids
    assert new_ids - old_ids == {partition_id(t) for t in node_tokens("a2", 8)}


def test_fewer_azs_than_replicas_tops_up_from_skipped_nodes() -> None:
    # The ring of a region that lost AZ c entirely: 3 replicas from 2 AZs, as Cassandra does.
    topology = make_topology([2, 2, 1])
    ring = RingSnapshot.build(["a0", "a1", "b0", "b1"], topology.vnodes)
    for part in partitions(ring, topology):
        assert len(part.replicas) == 3 and len(set(part.replicas)) == 3
        assert {topology.az_of(n) for n in part.replicas} == {"ra", "rb"}
    lonely = RingSnapshot.build(["a0"], topology.vnodes)
    assert {p.replicas for p in partitions(lonely, topology)} == {("a0",)}


def test_a_single_token_ring_is_one_partition_covering_everything() -> None:
    topology = make_topology([1, 1, 1], vnodes=1)
    ring = RingSnapshot.build(["a0"], 1)
    (only,) = partitions(ring, topology)
    assert only.start == only.end and only.size == RING_SIZE
    assert all(only.contains(t) for t in (0, only.end, only.end + 1, RING_SIZE - 1))


def test_ring_snapshots_refuse_malformed_token_lists() -> None:
    with pytest.raises(ValueError, match="ascending"):
        RingSnapshot((5, 5), ("a", "b"))
    with pytest.raises(ValueError, match="one owner per token"):
        RingSnapshot((5,), ())
    with pytest.raises(ValueError, match="at least one token"):
        RingSnapshot((), ())


def test_partition_contains_respects_half_open_ranges() -> None:
    part = Partition("p", 10, 20, ())
    assert not part.contains(10) and part.contains(11) and part.contains(20)
    wrap = Partition("w", RING_SIZE - 5, 3, ())
    assert wrap.contains(RING_SIZE - 1) and wrap.contains(0) and wrap.contains(3)
    assert not wrap.contains(4) and wrap.size == 8


def test_balance_report_for_twelve_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    topology = make_topology([4, 4, 4])
    ring = RingSnapshot.for_region(topology, "r")
    primary = ownership(ring)
    stored = replica_ownership(partitions(ring, topology))
    assert sum(primary.values()) == pytest.approx(1.0)
    assert sum(stored.values()) == pytest.approx(3.0)  # three replicas of everything
    mean = statistics.mean(primary.values())
    worst = max(primary.values()) / mean
    with capsys.disabled():
        print(f"\n  ring balance, 12 nodes x 8 vnodes: primary share max/mean {worst:.2f}, "
              f"min/mean {min(primary.values()) / mean:.2f}; replica share "
              f"max {max(stored.values()):.3f} min {min(stored.values()):.3f} (ideal 0.250)")
    assert worst < 2.5  # 8 vnodes is coarse; this catches a broken hash, not a bad draw
    # Adding a 13th node moves about 1/13 of the keys (exactly its own ranges).
    grown = make_topology([5, 4, 4])
    moved = ownership(RingSnapshot.for_region(grown, "r"))["a4"]
    assert 1 / 13 / 4 < moved < 1 / 13 * 3
