"""The bench against a DynamoDB-shaped server started by the test (tests/bench/fake_dynamodb.py).

Every run is a few seconds; what is asserted is accounting (every request sent is one the server
received, every operation is ok or an error of a named kind) and ratios measured in the same run,
never a wall-clock limit.
"""
from __future__ import annotations

import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from chaos.workload import BenchSettings, PhaseResult, SecondSample, run_benchmark
from tests.bench.conftest import FakeServer

pytestmark = pytest.mark.timeout(120)
TABLE = "dynalab-bench"


def _settings(server: FakeServer, **changes: object) -> BenchSettings:
    base = BenchSettings(endpoint=server.endpoint, records=200, duration_s=1.0, workers=1,
                         connections=8, seed=11, timeout_s=5.0)
    return replace(base, **changes)  # type: ignore[arg-type]


def _assert_rows_add_up(phase: PhaseResult) -> None:
    for op in (*phase.ops, phase.total):
        errors = sum(op.errors.values()) + sum(op.transport_errors.values())
        assert op.ok + errors == op.count and op.error_count == errors, op.name


def test_every_request_and_error_is_accounted_for(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server("--fail-every", "13", "--drop-every", "29")
    # Load alone first: the load phase has no warm-up and no drain, so it must match exactly.
    loaded = run_benchmark(_settings(server, load=True, duration_s=0.0, workers=2))
    after_load = server.stats()
    load = loaded.load
    assert load is not None and loaded.run is None
    assert load.requests == {"PutItem": 200}
    assert after_load["requests"]["PutItem"] == 200
    assert load.total.count == 200 and load.outside_window == 0
    assert load.total.errors == {"ProvisionedThroughputExceededException":
                                 after_load["injected"]["ProvisionedThroughputExceededException"]}
    assert sum(load.total.transport_errors.values()) == after_load["injected"]["dropped"]
    assert load.total.ok == after_load["succeeded"]["PutItem"]
    _assert_rows_add_up(load)

    samples: list[tuple[str, SecondSample]] = []
    result = run_benchmark(_settings(server, workload="A", duration_s=2.0, warmup_s=1.0,
                                     workers=2),
                           lambda phase, sample: samples.append((phase, sample)))
    run, stats = result.run, server.stats()
    assert run is not None
    sent = Counter(run.requests)
    received = Counter(stats["requests"]) - Counter(after_load["requests"])
    assert sent == Counter({op: received[op] for op in ("GetItem", "UpdateItem")})
    assert received["PutItem"] == 0 and set(sent) == {"GetItem", "UpdateItem"}
    # Workload A sends one request per operation: measured + warm-up + drain = all requests.
    assert run.total.count + run.outside_window == sum(sent.values())
    assert run.total.count == sum(op.count for op in run.ops)
    _assert_rows_add_up(run)
    assert run.total.errors.get("ProvisionedThroughputExceededException", 0) > 0
    assert sum(run.total.transport_errors.values()) > 0
    # The time series: one sample per second, and the measured seconds sum to the summary.
    assert [(s.second, s.warmup) for s in run.series] == [(0, True), (1, False), (2, False)]
    measured = [s for s in run.series if not s.warmup]
    assert sum(s.ops_per_s for s in measured) == run.total.count
    assert sum(s.errors for s in measured) == run.total.error_count
    assert [s.second for phase, s in samples if phase == "run"] == [0, 1, 2]
    assert run.cpu.workers_percent_of_core > 0 and len(run.cpu.per_worker_percent) == 2


def test_conditional_read_modify_write(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server()
    # 20 records, zipfian, 16 in flight: concurrent read-modify-writes of a hot key collide.
    result = run_benchmark(_settings(server, workload="F", records=20, load=True, duration_s=2.0,
                                     connections=16))
    run, stats = result.run, server.stats()
    assert run is not None
    ops = {op.name: op for op in run.ops}
    assert set(ops) == {"read", "rmw", "rmw-read", "rmw-update"}
    conflicts = ops["rmw-update"].errors.get("ConditionalCheckFailedException", 0)
    assert conflicts > 0 and ops["rmw-update"].ok > 0
    # An rmw is its update's outcome; the halves never count towards the total.
    assert ops["rmw"].errors == ops["rmw-update"].errors
    assert ops["rmw"].count == ops["rmw-update"].count <= ops["rmw-read"].count
    assert run.total.count == ops["read"].count + ops["rmw"].count
    assert not ops["read"].errors and not ops["rmw-read"].errors
    # Each accepted conditional update set v = (version read) + 1: the versions sum to them.
    assert stats["version_sum"][TABLE] == stats["succeeded"]["UpdateItem"]
    assert stats["failed"]["ConditionalCheckFailedException"] >= conflicts


@pytest.mark.parametrize("workload", ["B", "C", "D", "E", "put"])
def test_each_workload_runs_clean(fake_server: Callable[..., FakeServer], workload: str) -> None:
    server = fake_server()
    result = run_benchmark(_settings(server, workload=workload, load=True, records=100))
    run, stats = result.run, server.stats()
    assert run is not None and run.total.error_count == 0
    mix = {op for op, _ in result.settings.spec.mix}
    assert {op.name for op in run.ops} == mix
    assert all(op.count > 0 for op in run.ops if op.name != "update" or workload != "B")
    inserts = run.requests.get("PutItem", 0) if workload in ("D", "E") else 0
    assert stats["items"][TABLE] == 100 + inserts  # inserts add keys; put-only overwrites
    if workload == "E":
        assert stats["requests"]["Query"] == run.requests["Query"] > 0


def _throughput(server: FakeServer) -> PhaseResult:
    result = run_benchmark(_settings(server, workload="C", duration_s=1.5, warmup_s=0.5,
                                     connections=8, records=50, load=True))
    assert result.run is not None and result.run.total.error_count == 0
    return result.run


def test_throughput_follows_the_endpoint_latency(fake_server: Callable[..., FakeServer]) -> None:
    # Fixed concurrency: if the bench is not the limit, throughput ~ connections / latency.
    # Both runs at the same time, so they see the same machine (and finish sooner).
    servers = [fake_server("--delay-ms", "20"), fake_server("--delay-ms", "40")]
    with ThreadPoolExecutor(2) as pool:
        fast, slow = pool.map(_throughput, servers)
    ratio = fast.total.ops_per_s / slow.total.ops_per_s
    assert ratio > 1.4, (fast.total.ops_per_s, slow.total.ops_per_s)
    # No run can beat 8 requests in flight x 20 ms each: the counts are not inflated.
    assert fast.total.ops_per_s <= 8 / 0.020 * 1.05
    assert fast.total.latency.p50_us >= 20_000 and slow.total.latency.p50_us >= 40_000


def test_a_target_rate_is_held(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server()
    result = run_benchmark(_settings(server, workload="C", rate_ops_s=200.0, duration_s=1.5,
                                     warmup_s=0.5, workers=2))
    assert result.run is not None
    # The pacer issues exactly rate x time operations when the endpoint keeps up.
    assert result.run.total.ops_per_s == pytest.approx(200.0, rel=0.1)


def test_real_sigv4_signing_end_to_end(fake_server: Callable[..., FakeServer],
                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Example credentials in the environment (inherited by the spawned workers); no files read.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    server = fake_server()
    result = run_benchmark(_settings(server, workload="A", sign=True, load=True, records=50))
    assert result.run is not None and result.load is not None
    # The server rejects malformed Authorization headers, so zero errors means well-formed.
    assert result.load.total.error_count == 0 and result.run.total.error_count == 0
    assert server.stats()["injected"].get("rejected_headers", 0) == 0


def test_the_fake_server_rejects_malformed_headers(fake_server: Callable[..., FakeServer]) -> None:
    # What makes "no errors" above meaningful: a header botocore would not send is refused.
    server = fake_server()
    request = urllib.request.Request(
        server.endpoint, data=b'{"TableName":"t"}', method="POST",
        headers={"Content-Type": "application/x-amz-json-1.0",
                 "X-Amz-Target": "DynamoDB_20120810.DescribeTable",
                 "X-Amz-Date": "20250101T000000Z",
                 "Authorization": "AWS4-HMAC-SHA256 Credential=x, Signature=nothex"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 400
    assert b"IncompleteSignatureException" in answer.value.read()
    assert server.stats()["injected"]["rejected_headers"] == 1
