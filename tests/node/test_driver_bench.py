"""Commit throughput through three drivers (gRPC + RocksDB, one process, so one GIL for all
three nodes): opt in with `pytest -m bench -s tests/node/test_driver_bench.py`."""
from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest

from tests.node.test_driver_grpc import GROUPS, grpc_cluster
from tests.replication.driver_harness import by_id, run, wait_for_leaders

DURATION_S = 3.0
PAYLOAD = b"v" * 1024


@pytest.mark.bench
@pytest.mark.parametrize("groups,in_flight", [(1, 32), (100, 32), (100, 1000)])
def test_commit_throughput(tmp_path: Path, groups: int, in_flight: int) -> None:
    async def scenario() -> tuple[float, float]:
        async with grpc_cluster(tmp_path, GROUPS) as nodes:
            drivers = [n.driver for n in nodes]
            leaders = await wait_for_leaders(drivers, GROUPS, 30)
            ids = by_id(drivers)
            latencies: list[float] = []
            deadline = time.monotonic() + DURATION_S

            async def writer(worker: int) -> None:
                group = GROUPS[worker % groups]
                while time.monotonic() < deadline:
                    start = time.monotonic()
                    await ids[leaders[group]].propose(group, b"k=" + PAYLOAD)
                    latencies.append(time.monotonic() - start)

            start = time.monotonic()
            await asyncio.gather(*(writer(w) for w in range(in_flight)))
            elapsed = time.monotonic() - start
            return len(latencies) / elapsed, statistics.median(latencies)

    writes_s, p50_s = run(scenario, 90)
    print(f"\n{groups} group(s), {in_flight} in flight, 1 KB: {writes_s:,.0f} commits/s, "
          f"p50 {p50_s * 1000:.1f} ms")
    assert writes_s > 100
