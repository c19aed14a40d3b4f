"""Persist throughput of the RocksDB log store (opt in: pytest -m bench -s tests/node)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from node.logstore import GroupWrite, RocksLogEngine
from replication.types import Entry, HardState

DURATION_S = 2.0
PAYLOAD = b"x" * 1024


def measure(engine: RocksLogEngine, groups: int, per_group: int) -> tuple[float, float]:
    """Entries/s and persists/s writing `per_group` 1 KB entries to each of `groups` groups
    per persist_many (one WriteBatch, one fsync)."""
    names = [f"g{i}" for i in range(groups)]
    next_index = {n: engine.store(n).last_index() + 1 for n in names}
    persists = 0
    start = time.perf_counter()
    deadline = start + DURATION_S
    while time.perf_counter() < deadline:
        writes = []
        for n in names:
            lo = next_index[n]
            entries = [Entry(1, i, data=PAYLOAD) for i in range(lo, lo + per_group)]
            next_index[n] = lo + per_group
            writes.append(GroupWrite(n, HardState(term=1, vote="n1", commit=lo - 1), entries))
        engine.persist_many(writes)
        persists += 1
    elapsed = time.perf_counter() - start
    return persists * groups * per_group / elapsed, persists / elapsed


@pytest.mark.bench
@pytest.mark.parametrize("groups,per_group", [(1, 32), (32, 1), (100, 1), (10, 32)])
def test_persist_throughput(tmp_path: Path, groups: int, per_group: int) -> None:
    engine = RocksLogEngine(tmp_path / "db")
    try:
        entries_s, persists_s = measure(engine, groups, per_group)
    finally:
        engine.close()
    print(f"\npersist {groups} group(s) x {per_group} entries of 1 KB, sync on: "
          f"{entries_s:,.0f} entries/s, {persists_s:,.0f} fsyncs/s")
    assert entries_s > 1000
