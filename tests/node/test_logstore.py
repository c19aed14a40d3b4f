"""One behavioural suite for every LogStore: MemoryLogStore (the reference) and the RocksDB store.

`Harness.reopen()` returns the store as a restarted process would see it: the same object for
the memory store, a freshly opened engine for RocksDB, so every check also covers recovery.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Iterator

import pytest

from node.logstore import GroupWrite, RocksLogEngine
from replication.logstore import CompactedError, LogStore, MemoryLogStore
from replication.types import ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta


class Harness:
    def __init__(self, kind: str, path: Path, tail_cache_entries: int) -> None:
        self.kind = kind
        self._path = path
        self._tail = tail_cache_entries
        self._engine: RocksLogEngine | None = None
        self.store: LogStore = self._open()

    def _open(self) -> LogStore:
        if self.kind == "memory":
            return MemoryLogStore()
        self._engine = RocksLogEngine(self._path, tail_cache_entries=self._tail)
        return self._engine.store("partition-7")

    def reopen(self) -> LogStore:
        if self._engine is not None:
            self._engine.close()
            self._engine = RocksLogEngine(self._path, tail_cache_entries=self._tail)
            self.store = self._engine.store("partition-7")
        return self.store

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


@pytest.fixture(params=["memory", "rocks", "rocks-tiny-cache"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    # tiny cache: reads below the last 2 entries must come from RocksDB itself
    kind = "memory" if request.param == "memory" else "rocks"
    h = Harness(kind, tmp_path / "db", 2 if request.param == "rocks-tiny-cache" else 256)
    yield h
    h.close()


def now_and_after_reopen(harness: Harness) -> Iterator[LogStore]:
    """The store as it is, then as a restarted process opens it (lazily, in that order)."""
    yield harness.store
    yield harness.reopen()


def ents(lo: int, hi: int, term: int, size: int = 3) -> list[Entry]:
    return [Entry(term=term, index=i, data=bytes([i % 251]) * size) for i in range(lo, hi)]


def snap(index: int, term: int, data: bytes = b"state") -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, ConfState(("n1", "n2", "n3"), ("n4",))), data)


def dump(store: LogStore) -> tuple[object, ...]:
    """Everything observable about a store, for comparing two stores."""
    first, last = store.first_index(), store.last_index()
    return (store.hard_state(), store.snapshot(), store.conf_state(), first, last,
            store.term(first - 1), store.entries(first, last + 1))


def test_empty_store(harness: Harness) -> None:
    for store in now_and_after_reopen(harness):
        assert (store.first_index(), store.last_index()) == (1, 0)
        assert store.term(0) == 0
        assert store.hard_state() == HardState()
        assert store.snapshot() == Snapshot()
        assert store.entries(1, 1) == []
        with pytest.raises(IndexError):
            store.term(1)
        with pytest.raises(IndexError):
            store.entries(1, 2)


def test_append_then_read_back_after_reopen(harness: Harness) -> None:
    harness.store.persist(HardState(term=2, vote="n2", commit=3), ents(1, 6, 1) + ents(6, 9, 2))
    for store in now_and_after_reopen(harness):
        assert (store.first_index(), store.last_index()) == (1, 8)
        assert store.hard_state() == HardState(term=2, vote="n2", commit=3)
        assert [store.term(i) for i in range(0, 9)] == [0, 1, 1, 1, 1, 1, 2, 2, 2]
        assert store.entries(2, 7) == (ents(1, 6, 1) + ents(6, 9, 2))[1:6]


def test_entry_kinds_and_empty_data_round_trip(harness: Harness) -> None:
    batch = [Entry(1, 1, EntryKind.NOOP), Entry(1, 2, EntryKind.CONF_CHANGE, b"\x00\xff"),
             Entry(1, 3, EntryKind.NORMAL, b"")]
    harness.store.persist(None, batch)
    assert harness.reopen().entries(1, 4) == batch


def test_max_bytes_returns_at_least_one_then_stops(harness: Harness) -> None:
    harness.store.persist(None, ents(1, 11, 1, size=10))
    for store in now_and_after_reopen(harness):
        assert len(store.entries(1, 11, max_bytes=1)) == 1
        assert len(store.entries(1, 11, max_bytes=30)) == 3
        assert len(store.entries(1, 11, max_bytes=39)) == 3
        assert len(store.entries(1, 11, max_bytes=10_000)) == 10


def test_conflicting_append_replaces_the_suffix(harness: Harness) -> None:
    harness.store.persist(None, ents(1, 11, 1))
    harness.store.persist(None, ents(4, 6, 2))
    for store in now_and_after_reopen(harness):
        assert store.last_index() == 5
        assert [store.term(i) for i in range(1, 6)] == [1, 1, 1, 2, 2]
        with pytest.raises(IndexError):
            store.term(6)


def test_gap_is_rejected_and_changes_nothing(harness: Harness) -> None:
    harness.store.persist(HardState(term=1), ents(1, 4, 1))
    before = dump(harness.store)
    with pytest.raises(ValueError):
        harness.store.persist(HardState(term=9, commit=3), ents(6, 8, 1))
    assert dump(harness.store) == before
    assert dump(harness.reopen()) == before


def test_hard_state_alone_and_vote_none(harness: Harness) -> None:
    harness.store.persist(HardState(term=5, vote="n1", commit=0), [])
    harness.store.persist(HardState(term=6, vote=None, commit=0), [])
    assert harness.reopen().hard_state() == HardState(term=6, vote=None, commit=0)


def test_compact_moves_first_index(harness: Harness) -> None:
    harness.store.persist(HardState(term=2, commit=8), ents(1, 5, 1) + ents(5, 11, 2))
    harness.store.compact(snap(6, 2))
    for store in now_and_after_reopen(harness):
        assert (store.first_index(), store.last_index()) == (7, 10)
        assert store.term(6) == 2
        assert store.snapshot() == snap(6, 2)
        assert store.conf_state() == ConfState(("n1", "n2", "n3"), ("n4",))
        with pytest.raises(CompactedError):
            store.term(5)
        with pytest.raises(CompactedError):
            store.entries(6, 8)
        assert store.entries(7, 11) == ents(7, 11, 2)


def test_compact_older_snapshot_is_ignored(harness: Harness) -> None:
    harness.store.persist(None, ents(1, 11, 1))
    harness.store.compact(snap(6, 1, b"new"))
    harness.store.compact(snap(3, 1, b"old"))
    assert harness.reopen().snapshot() == snap(6, 1, b"new")


def test_compact_past_the_log_empties_it(harness: Harness) -> None:
    harness.store.persist(None, ents(1, 4, 1))
    harness.store.compact(snap(9, 3))
    for store in now_and_after_reopen(harness):
        assert (store.first_index(), store.last_index()) == (10, 9)
        assert store.term(9) == 3


def test_install_agreeing_snapshot_keeps_the_suffix(harness: Harness) -> None:
    harness.store.persist(None, ents(1, 11, 1))
    harness.store.persist(HardState(term=1, commit=5), [], snap(5, 1))
    for store in now_and_after_reopen(harness):
        assert (store.first_index(), store.last_index()) == (6, 10)
        assert store.entries(6, 11) == ents(6, 11, 1)


def test_install_conflicting_snapshot_drops_the_log(harness: Harness) -> None:
    harness.store.persist(None, ents(1, 11, 1))
    harness.store.persist(HardState(term=3, commit=5), [], snap(5, 3))
    for store in now_and_after_reopen(harness):
        assert (store.first_index(), store.last_index()) == (6, 5)
        assert store.term(5) == 3
        assert store.snapshot().data == b"state"


def test_install_then_append_in_one_persist(harness: Harness) -> None:
    harness.store.persist(None, ents(1, 4, 1))
    # entries at or below the snapshot index are skipped, the rest follow it
    harness.store.persist(HardState(term=4), ents(8, 13, 4), snap(9, 4))
    for store in now_and_after_reopen(harness):
        assert (store.first_index(), store.last_index()) == (10, 12)
        assert store.entries(10, 13) == ents(10, 13, 4)


def test_random_operations_match_the_memory_store(harness: Harness) -> None:
    """A seeded model check: any sequence of valid operations leaves the store observably equal
    to MemoryLogStore, before and after a reopen."""
    rng = random.Random(7)
    model = MemoryLogStore()
    term = 1
    for step in range(300):
        op = rng.random()
        if op < 0.7:
            lo = rng.randint(model.first_index(), model.last_index() + 1)
            term += rng.random() < 0.2
            batch = ents(lo, lo + rng.randint(0, 8), term, size=rng.randint(0, 20))
            hard = HardState(term=term, vote=rng.choice([None, "n1"]), commit=lo - 1)
            for s in (model, harness.store):
                s.persist(hard, batch)
        elif op < 0.85 and model.last_index() >= model.first_index():
            at = rng.randint(model.first_index(), model.last_index())
            for s in (model, harness.store):
                s.compact(snap(at, model.term(at), f"s{step}".encode()))
        else:
            at = model.last_index() + rng.randint(-3, 3)
            at_term = model.term(at) if model.first_index() <= at <= model.last_index() else term
            for s in (model, harness.store):
                s.persist(None, [], snap(max(at, 1), at_term, f"i{step}".encode()))
        assert dump(harness.store) == dump(model), step
        if step % 60 == 0:
            assert dump(harness.reopen()) == dump(model), step


# ---------------------------------------------------------------------------- RocksDB only

@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Callable[[], RocksLogEngine]]:
    opened: list[RocksLogEngine] = []

    def open_engine() -> RocksLogEngine:
        for engine in opened:
            engine.close()
        opened.clear()
        opened.append(RocksLogEngine(tmp_path / "db", tail_cache_entries=4))
        return opened[0]

    yield open_engine
    for engine in opened:
        engine.close()


def test_groups_are_isolated_even_when_names_share_a_prefix(
        engine_factory: Callable[[], RocksLogEngine]) -> None:
    engine = engine_factory()
    names = ["a", "ab", "a\x00", "b", "x" * 300]
    engine.persist_many(GroupWrite(n, HardState(term=i + 1), ents(1, 3 + i, i + 1))
                        for i, n in enumerate(names))
    engine.store("ab").compact(snap(2, 2))
    engine = engine_factory()
    assert engine.groups() == sorted(names)
    for i, name in enumerate(names):
        store = engine.store(name)
        assert store.hard_state().term == i + 1
        assert store.last_index() == 2 + i
        lo = store.first_index()
        assert store.entries(lo, store.last_index() + 1) == ents(lo, 3 + i, i + 1)


def test_persist_many_is_all_or_nothing(engine_factory: Callable[[], RocksLogEngine]) -> None:
    engine = engine_factory()
    engine.persist_many([GroupWrite("g1", None, ents(1, 3, 1))])
    with pytest.raises(ValueError):
        engine.persist_many([GroupWrite("g1", HardState(term=5), ents(3, 5, 1)),
                             GroupWrite("g2", None, ents(7, 9, 1))])  # g2 has a gap
    with pytest.raises(ValueError):
        engine.persist_many([GroupWrite("g1", None, ents(3, 4, 1)),
                             GroupWrite("g1", None, ents(4, 5, 1))])
    for reopen in (False, True):
        eng = engine_factory() if reopen else engine
        assert eng.store("g1").last_index() == 2
        assert eng.store("g1").hard_state() == HardState()
        assert eng.store("g2").last_index() == 0


def test_store_is_one_object_per_group(engine_factory: Callable[[], RocksLogEngine]) -> None:
    engine = engine_factory()
    assert engine.store("g") is engine.store("g")
    engine.store("g").persist(None, ents(1, 2, 1))
    assert engine.store("g").last_index() == 1


def test_only_what_raft_needs_durable_is_synced(
        engine_factory: Callable[[], RocksLogEngine]) -> None:
    # etcd's MustSync: entries, a snapshot, a new term or vote need the fsync; a commit index
    # alone does not (a replica that loses it learns it again from the leader).
    engine = engine_factory()
    synced = lambda: engine.stats["synced"]  # noqa: E731
    engine.persist_many([GroupWrite("g", HardState(term=1, vote="a"), ents(1, 3, 1))])
    assert synced() == 1
    engine.persist_many([GroupWrite("g", HardState(term=1, vote="a", commit=2))])
    assert synced() == 1 and engine.stats["writes"] == 2
    engine.persist_many([GroupWrite("g", HardState(term=1, vote="a", commit=2))])  # unchanged
    assert engine.stats["writes"] == 2  # nothing to write at all
    engine.persist_many([GroupWrite("g", HardState(term=2, vote=None, commit=2)),
                         GroupWrite("h", HardState(commit=0), [])])
    assert synced() == 2  # a new term
    engine.persist_many([GroupWrite("g", HardState(term=2, vote="b", commit=2))])
    assert synced() == 3  # a new vote
    engine.persist_many([GroupWrite("g", None, [], snap(2, 1))])
    assert synced() == 4  # a snapshot
    engine.persist_many([GroupWrite("g", HardState(term=2, vote="b", commit=3), ents(3, 4, 2)),
                         GroupWrite("h", HardState(commit=0))])
    assert synced() == 5  # entries
    # whatever was synced or not, a reopened engine (kill -9 keeps the OS's copy) has all of it
    engine = engine_factory()
    assert engine.store("g").hard_state() == HardState(term=2, vote="b", commit=3)
    assert engine.store("g").last_index() == 3
