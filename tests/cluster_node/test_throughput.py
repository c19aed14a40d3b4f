"""Write throughput through Storage.Execute on three real nodes (opt in: -m bench).

The client sends to partition leaders directly (as a router does after its first NotLeader) with
`IN_FLIGHT` concurrent writers spread over every partition; prints ops/s and latency quantiles."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tests.cluster_node.harness import SCHEMA, create_table, item, put_body, running_cluster

pytestmark = [pytest.mark.bench, pytest.mark.cluster]

IN_FLIGHT = int(os.environ.get("NODE_BENCH_IN_FLIGHT", "64"))
SECONDS = float(os.environ.get("NODE_BENCH_SECONDS", "8"))


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_write_throughput(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_cluster(tmp_path, vnodes=8) as (cluster, client):
            table = await create_table(client, "bench")
            pad = "x" * 1000  # ~1 KB items, as in DESIGN.md's table
            latencies_ms: list[float] = []
            end = time.monotonic() + SECONDS

            async def writer(w: int) -> None:
                for i in range(10_000_000):  # bounded by the clock
                    if time.monotonic() >= end:
                        return
                    it = item(f"w{w}-{i}", 0, pad=pad)
                    group = cluster.partition_of(it, SCHEMA).id
                    start = time.monotonic()
                    _, reply = await client.call_leader(group, "Write", put_body(table, it))
                    assert reply.ok, reply
                    latencies_ms.append((time.monotonic() - start) * 1000)
            begin = time.monotonic()
            cpu0 = {n: cpu_s(p.pid) for n, p in cluster.procs.items()}
            self0 = time.process_time()
            await asyncio.gather(*(writer(w) for w in range(IN_FLIGHT)))
            elapsed = time.monotonic() - begin
            cpu = {n: round(cpu_s(p.pid) - cpu0[n], 1) for n, p in cluster.procs.items()}
            print(f"\nCPU seconds: nodes {cpu}, client {time.process_time() - self0:.1f}")
            latencies_ms.sort()
            q = lambda f: latencies_ms[int(f * (len(latencies_ms) - 1))]  # noqa: E731
            print(f"\nWRITES {len(latencies_ms)} in {elapsed:.1f}s = "
                  f"{len(latencies_ms) / elapsed:.0f}/s, {IN_FLIGHT} in flight, "
                  f"p50 {q(0.5):.1f} ms p99 {q(0.99):.1f} ms")
            assert latencies_ms
    asyncio.run(asyncio.wait_for(scenario(), SECONDS + 120))
