"""The shipped experiments (short forms) and `dynalab chaos` against a real cluster started with
`dynalab up --detach` and chaos enabled. Skipped only while the cluster's programs do not exist
yet (`import node.__main__, router.__main__` fails).

The safety verdict must hold in every experiment: no acknowledged write lost, no stale strongly
consistent read, every key's history linearizable, and the steady state back after the heal.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Iterator

import pytest
from toxiproxy import Toxiproxy

from chaos.experiment import Target, load_experiment, run_experiment
from chaos.experiment.cli import EXPERIMENTS_DIR
from chaos.faults import IsolateAz, Latency, apply_fault, heal
from chaos.workload.auth import StaticHeaders
from chaos.workload.bodies import KeySchema
from chaos.workload.client import DynamoClient
from chaos.workload.table import ensure_table
from router.items import UNSAFE_STRONG_READS_ENV

pytestmark = pytest.mark.cluster

ONE_REGION_CHAOS = """\
vnodes: 4
chaos: {enabled: true, inter_az_latency_ms: 1}
regions:
  us-east-1:
    azs:
      us-east-1a: {nodes: [use1-a1]}
      us-east-1b: {nodes: [use1-b1]}
      us-east-1c: {nodes: [use1-c1]}
    routers:
      - {id: use1-router, az: us-east-1a}
"""
SINGLE_REGION = ["leader-kill-loop", "az-outage", "az-isolation", "slow-follower",
                 "flapping-link"]
GLOBAL = ["region-partition", "clock-skew-lww"]


def _cluster_programs_exist() -> bool:
    done = subprocess.run([sys.executable, "-c", "import node.__main__, router.__main__"],
                          capture_output=True, timeout=120)
    return done.returncode == 0


def _dynalab(*args: str, timeout_s: float = 180.0,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`dynalab ARGS`; `env` is added to ours (the supervisor passes it on to every process)."""
    return subprocess.run([sys.executable, "-m", "dynalab.cli", *args], capture_output=True,
                          text=True, timeout=timeout_s, env={**os.environ, **(env or {})})


def _kill_leftovers(data_dir: Path) -> None:
    """After `down`: SIGKILL the process groups state.json still names, if they are ours."""
    path = data_dir / "state.json"
    if not path.exists():
        return
    for record in json.loads(path.read_text())["processes"].values():
        pid, pgid = int(record["pid"]), int(record["pgid"])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        if [c.decode() for c in cmdline] == record["argv"] and pgid not in (0, 1, os.getpgrp()):
            os.killpg(pgid, signal.SIGKILL)


def _start(tmp: Path, topology: str, env: dict[str, str] | None = None) -> Iterator[Path]:
    if not _cluster_programs_exist():
        pytest.skip("the cluster's programs (node, router) are not implemented yet")
    data_dir = tmp / "data"
    config = tmp / "topology.yaml"
    config.write_text(topology)
    done = _dynalab("up", "--detach", "--data-dir", str(data_dir), "--config", str(config),
                    env=env)
    try:
        assert done.returncode == 0, f"dynalab up failed:\n{done.stdout}\n{done.stderr}"
        yield data_dir
    finally:
        _dynalab("down", "--data-dir", str(data_dir), timeout_s=120)
        _kill_leftovers(data_dir)


@pytest.fixture(scope="module")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from _start(tmp_path_factory.mktemp("chaos1"), ONE_REGION_CHAOS)


@pytest.fixture(scope="module")
def broken_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The same cluster, but its router answers strongly consistent reads from its own AZ's
    replica (a test-only switch, router/items.py): a broken guarantee the verdict must catch."""
    yield from _start(tmp_path_factory.mktemp("broken"), ONE_REGION_CHAOS,
                      env={UNSAFE_STRONG_READS_ENV: "1"})


@pytest.fixture(scope="module")
def two_region_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    topology = (EXPERIMENTS_DIR / "topologies" / "chaos-two-regions.yaml").read_text()
    yield from _start(tmp_path_factory.mktemp("chaos2"), topology.replace("vnodes: 8",
                                                                          "vnodes: 4"))


@pytest.mark.parametrize("name", SINGLE_REGION)
def test_short_experiment_keeps_every_acknowledged_write(chaos_cluster: Path, name: str,
                                                         tmp_path: Path) -> None:
    experiment = load_experiment(EXPERIMENTS_DIR / f"{name}.yaml", short=True)
    report = run_experiment(experiment, Target.from_data_dir(chaos_cluster), tmp_path / "out")
    print((tmp_path / "out" / "summary.txt").read_text())
    verdict = report.verdict
    assert report.status == "completed" and verdict is not None
    assert [e.error for e in report.events] == [None] * len(report.events)
    assert not verdict.lost_writes, verdict.to_json()["lost_writes"]
    assert not verdict.stale_reads, verdict.to_json()["stale_reads"]
    assert verdict.linearizable, verdict.linearizability
    assert verdict.steady.ok, verdict.to_json()["steady_state"]
    assert json.loads((chaos_cluster / "faults" / "active.json").read_text())["faults"] == []
    assert (tmp_path / "out" / "plot.png").exists()


# A workload with no faults of its own: the test delays replication into the router's AZ's node.
_STRONG_REGISTER = """\
name: stale-replica-reads
description: strong reads and writes on a register while use1-a1 hears its leaders late
duration_s: 10
workload: {keys: 8, mix: {read: 0.5, write: 0.5}, rate_ops_s: 60, clients: 4,
           consistency: strong, regions: [us-east-1]}
steady_state: {max_error_rate: 0.01, window_s: 2, recovery_timeout_s: 30}
faults: []
"""


def test_the_verdict_catches_strong_reads_served_by_a_lagging_replica(
        broken_cluster: Path, tmp_path: Path) -> None:
    """Appends from the other AZs' nodes reach use1-a1 300 ms late (latency on the request
    stream of their links to it; `dynalab chaos latency` slows the response stream, which does
    not delay a one-way Raft stream). The router's strong reads go to use1-a1 (the switch), so
    where it follows it answers with what its leader acknowledged up to 300 ms before."""
    target = Target.from_data_dir(broken_cluster)
    assert target.context is not None and target.context.api is not None
    api = urllib.parse.urlsplit(target.context.api.url)
    client = Toxiproxy()
    client.update_api_consumer(api.hostname, api.port)
    lagging = [client.get_proxy(f"az:{az}->node:use1-a1") for az in ("us-east-1b", "us-east-1c")]
    for proxy in lagging:
        proxy.add_toxic(name="lag", type="latency", stream="upstream",
                        attributes={"latency": 300})
    try:
        spec = tmp_path / "stale-replica-reads.yaml"
        spec.write_text(_STRONG_REGISTER)
        report = run_experiment(load_experiment(spec), target, tmp_path / "out")
    finally:
        heal(target.context)  # the network back to its baseline, the toxic above included
    summary = (tmp_path / "out" / "summary.txt").read_text()
    print(summary)
    verdict = report.verdict
    assert report.status == "completed" and verdict is not None
    assert verdict.stale_reads, "a replica 300 ms behind served strong reads, none found stale"
    assert not verdict.linearizable and not report.ok
    assert not verdict.lost_writes  # the writes themselves went through the leaders
    assert "VERDICT: FAIL" in summary


def _put_latency_s(endpoint: str, table: str) -> float:
    """Seconds one PutItem takes (the table is created first if missing)."""
    async def put() -> float:
        async with DynamoClient(endpoint, StaticHeaders("us-east-1"), 2, 30.0) as client:
            await ensure_table(client, table, True, KeySchema(hash_name="pk", range_name=None))
            start = time.monotonic()
            reply = await client.call_json("PutItem", {
                "TableName": table, "Item": {"pk": {"S": "probe"}, "val": {"S": str(start)}}})
            assert reply.ok, reply
            return time.monotonic() - start

    return asyncio.run(put())


def test_network_faults_reach_the_processes(chaos_cluster: Path) -> None:
    """Router -> node and node -> node connections go through the proxies: a latency on the
    calls from the router's AZ slows every write; cutting that AZ's outgoing links makes writes
    fail (the router reaches only its own AZ's node, which reaches no one)."""
    target = Target.from_data_dir(chaos_cluster)
    context = target.context
    assert context is not None
    endpoint, table = target.endpoints["us-east-1"], "dynalab-chaos-probe"
    _put_latency_s(endpoint, table)  # creates the table
    try:
        apply_fault(context, Latency("us-east-1a", "us-east-1", ms=400))
        assert _put_latency_s(endpoint, table) >= 0.4
        heal(context)
        apply_fault(context, IsolateAz("us-east-1a", direction="out"))
        with pytest.raises(AssertionError):
            _put_latency_s(endpoint, table)
    finally:
        heal(context)


def test_chaos_cli_on_the_cluster(chaos_cluster: Path) -> None:
    data = ["--data-dir", str(chaos_cluster)]
    killed = _dynalab("chaos", *data, "kill", "use1-b1")
    assert killed.returncode == 0, killed.stderr
    status = _dynalab("status", *data)
    assert "kill -9 use1-b1" in status.stdout
    assert any(line.startswith("use1-b1") and "dead" in line
               for line in status.stdout.splitlines())
    healed = _dynalab("chaos", *data, "heal")
    assert healed.returncode == 0 and "restarted use1-b1" in healed.stdout
    assert "0 active fault(s)" in _dynalab("chaos", *data, "status").stdout


@pytest.mark.parametrize("name", GLOBAL)
def test_global_table_experiments_converge_or_skip(two_region_cluster: Path, name: str,
                                                   tmp_path: Path) -> None:
    experiment = load_experiment(EXPERIMENTS_DIR / f"{name}.yaml", short=True)
    report = run_experiment(experiment, Target.from_data_dir(two_region_cluster),
                            tmp_path / "out")
    print((tmp_path / "out" / "summary.txt").read_text())
    if report.status == "skipped":
        assert "ReplicaUpdates" in (report.reason or "") or "global" in (report.reason or "")
        return
    verdict = report.verdict
    assert verdict is not None
    assert verdict.convergence["status"] == "ok", verdict.convergence
    assert report.ok
