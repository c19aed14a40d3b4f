"""Writer process for the kill -9 test: applies a seeded stream of log operations to a
RocksLogEngine and prints each operation's number after it returned (its acknowledgement).

The stream is a pure function of (seed, state at start), so the test replays it on
MemoryLogStores and knows exactly what the DB must hold after k acknowledged operations.

    python -m tests.node.crash_writer DB_PATH SEED
"""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from typing import Mapping

from node.logstore import GroupWrite, RocksLogEngine
from replication.logstore import LogStore
from replication.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta

GROUPS = ("p0", "p1", "p2", "p3")
MAX_OPS = 100_000  # the test kills the writer long before this
BATCH_ENTRIES = 32


@dataclass(frozen=True, slots=True)
class Op:
    writes: tuple[GroupWrite, ...] = ()
    compact: tuple[str, Snapshot] | None = None


def next_op(rng: random.Random, stores: Mapping[str, LogStore]) -> Op:
    if rng.random() < 0.05:
        group = rng.choice(GROUPS)
        store = stores[group]
        at = store.hard_state().commit
        if at >= store.first_index():
            return Op(compact=(group, _snap(at, store.term(at), rng)))
    chosen = sorted(rng.sample(GROUPS, rng.randint(1, len(GROUPS))))
    return Op(writes=tuple(_write(rng, g, stores[g]) for g in chosen))


def _write(rng: random.Random, group: str, store: LogStore) -> GroupWrite:
    hard = store.hard_state()
    roll = rng.random()
    if roll < 0.04:  # a leader's snapshot that conflicts with our log
        term = hard.term + 1
        at = store.last_index() + rng.randint(1, 5)
        return GroupWrite(group, HardState(term, "n1", at), (), _snap(at, term, rng))
    lo, term = store.last_index() + 1, max(hard.term, 1)
    if roll < 0.14:  # a new leader overwrites our uncommitted suffix
        term += 1
        lo = rng.randint(max(store.first_index(), hard.commit + 1), store.last_index() + 1)
    count = BATCH_ENTRIES if roll >= 0.14 else rng.randint(1, BATCH_ENTRIES)
    entries = tuple(Entry(term, i, data=rng.randbytes(rng.randint(0, 200)))
                    for i in range(lo, lo + count))
    last = lo + count - 1
    commit = rng.randint(min(hard.commit, last), last)
    return GroupWrite(group, HardState(term, rng.choice(["n1", "n2", None]), commit), entries)


def _snap(at: int, term: int, rng: random.Random) -> Snapshot:
    return Snapshot(SnapshotMeta(at, term, ConfState(("n1", "n2", "n3"))), rng.randbytes(64))


def apply_to_memory(op: Op, stores: Mapping[str, LogStore]) -> None:
    for w in op.writes:
        stores[w.group].persist(w.hard_state, w.entries, w.snapshot)
    if op.compact is not None:
        stores[op.compact[0]].compact(op.compact[1])


def apply_to_engine(op: Op, engine: RocksLogEngine) -> None:
    if op.writes:
        engine.persist_many(op.writes)
    if op.compact is not None:
        engine.store(op.compact[0]).compact(op.compact[1])


def main(argv: list[str]) -> int:
    path, seed = argv[0], int(argv[1])
    engine = RocksLogEngine(path, tail_cache_entries=16)
    stores = {g: engine.store(g) for g in GROUPS}
    rng = random.Random(seed)
    print("ready", flush=True)
    for number in range(MAX_OPS):
        apply_to_engine(next_op(rng, stores), engine)
        print(number, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
