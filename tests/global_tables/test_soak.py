"""Measurements (opt in: pytest -m soak -s tests/global_tables/test_soak.py): replication lag
between the two regions under a steady write load, and the time to converge after a 30 s cut
between the regions (a chaos partition of the cross-region proxies) with writers on both sides.

Lag is measured twice: by the replicators (commit to applied in the other region, the lag file's
apply_lag_ms) and by a client (PutItem answered in us-east-1 until a GetItem in eu-west-1 sees
it, polled every 5 ms, so it includes up to 5 ms of polling and two HTTP round trips).
"""
from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from chaos.checkers import check_convergence
from replication.replicator.lag import percentile
from tests.e2e.cluster import Cluster, start_cluster, stop_cluster, wait_for
from tests.global_tables.gt import (A, B, TWO_REGIONS, converged, local_writes, make_global,
                                    merged, new_table_name, scan_all)

pytestmark = [pytest.mark.soak, pytest.mark.cluster]

LOAD_S = 20.0
CUT_S = 30.0
RATE_PER_REGION = 50  # writes per second, per region


@pytest.fixture
def chaos_cluster(tmp_path: Path) -> Iterator[Cluster]:
    config = "chaos: {enabled: true, toxiproxy_api_port: 0}\n" + TWO_REGIONS.format(vnodes=4)
    started = start_cluster(tmp_path / "data", config)
    try:
        yield started
    finally:
        stop_cluster(started)


class Writers:
    """One paced writer thread per region until stopped; counts what each wrote."""

    def __init__(self, cluster: Cluster, table: str) -> None:
        self._stop = threading.Event()
        self.counts = {A: 0, B: 0}
        self.errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, args=(cluster, table, region))
                         for region in (A, B)]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, cluster: Cluster, table: str, region: str) -> None:
        client = cluster.client(region)
        interval_s = 1 / RATE_PER_REGION
        next_at = time.monotonic()
        for i in range(10**7):  # bounded; stopped by the event long before
            if self._stop.is_set():
                return
            try:  # a small key space: both regions keep writing the same keys too
                client.put_item(TableName=table, Item={"pk": {"S": f"k{i % 500}"},
                                                       "v": {"S": f"{region}-{i}"}})
                self.counts[region] += 1
            except BaseException as error:  # noqa: BLE001 - reported by the test
                self.errors.append(error)
                return
            next_at += interval_s
            time.sleep(max(0.0, next_at - time.monotonic()))


def _probe_lags_ms(cluster: Cluster, table: str, until: Callable[[], bool]) -> list[float]:
    a, b = cluster.client(A), cluster.client(B)
    lags: list[float] = []
    for i in range(10_000):
        if until():
            break
        key = {"pk": {"S": f"probe-{i}"}}
        a.put_item(TableName=table, Item={**key, "v": {"S": "p"}})
        written = time.monotonic()
        wait_for(lambda: "Item" in b.get_item(TableName=table, Key=key), "the probe in B", 30,
                 interval_s=0.005)
        lags.append((time.monotonic() - written) * 1000)
        time.sleep(0.2)
    return lags


def _replicator_lag(cluster: Cluster) -> dict[str, Any]:
    out = {}
    for region in (A, B):
        report = json.loads((cluster.data_dir / "replication" / f"{region}.json").read_text())
        out.update({pair: view["apply_lag_ms"] for pair, view in report["pairs"].items()})
    return out


def test_lag_under_load_and_convergence_after_a_30s_cut(chaos_cluster: Cluster) -> None:
    table = new_table_name("soak")
    make_global(chaos_cluster, table)
    results: dict[str, Any] = {"rate_per_region": RATE_PER_REGION}
    with Writers(chaos_cluster, table) as writers:
        started = time.monotonic()
        probe = _probe_lags_ms(chaos_cluster, table, lambda: time.monotonic() - started > LOAD_S)
        results["client_lag_ms"] = {"p50": statistics.median(probe),
                                    "p99": percentile(probe, 0.99), "samples": len(probe)}
        results["replicator_apply_lag_ms"] = _replicator_lag(chaos_cluster)
        chaos_cluster.run("chaos", "partition", A, B)
        time.sleep(CUT_S)  # the cut itself is the experiment: writers keep going meanwhile
        writers.__exit__()
        healed = time.monotonic()
        chaos_cluster.run("chaos", "heal")
        contents = wait_for(lambda: converged(chaos_cluster, table), "convergence", 120,
                            interval_s=0.2)
        results["converge_after_heal_s"] = round(time.monotonic() - healed, 2)
    assert not writers.errors, writers.errors
    results["writes"] = dict(writers.counts)
    candidates = merged(local_writes(chaos_cluster, A, table),
                        local_writes(chaos_cluster, B, table))
    report = check_convergence({A: scan_all(chaos_cluster.client(A), table), B: contents},
                               candidates)
    assert report.ok, report.summary()
    print("\nglobal tables soak:", json.dumps(results, indent=2))
    assert results["client_lag_ms"]["p99"] < 5000
