"""Opt-in (-m bench): the bench's own ceiling, and a run against moto's server if installed.

    .venv/bin/python -m pytest tests/bench/test_ceiling.py -m bench -s
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest

from chaos.workload import BenchSettings, format_table, run_benchmark
from tests.bench.conftest import FakeServer

pytestmark = [pytest.mark.bench, pytest.mark.timeout(300)]


@pytest.mark.parametrize("workers", [1, 2])
def test_ceiling_against_a_canned_endpoint(fake_server: Callable[..., FakeServer],
                                           workers: int) -> None:
    # The --raw server answers {} as cheaply as possible: what is left is the bench's own cost.
    server = fake_server("--raw")
    result = run_benchmark(BenchSettings(endpoint=server.endpoint, workload="C", records=10_000,
                                         duration_s=5.0, warmup_s=1.0, workers=workers,
                                         connections=64, seed=1))
    run = result.run
    assert run is not None and run.total.error_count == 0 and run.total.count > 0
    print(f"\n{format_table(result)}\n")
    per_core = run.total.ops_per_s / max(run.cpu.workers_percent_of_core / 100, 1e-9)
    print(f"ceiling, {workers} worker(s): {run.total.ops_per_s:,.0f} ops/s at "
          f"{run.cpu.workers_percent_of_core:.0f}% of a core = {per_core:,.0f} ops per core-second")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_against_moto_server() -> None:
    pytest.importorskip("moto.server")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        result = run_benchmark(BenchSettings(endpoint=endpoint, workload="F", records=200,
                                             load=True, duration_s=3.0, connections=8, seed=2))
        run = result.run
        assert run is not None and run.total.count > 0
        unexpected = {k: v for op in run.ops for k, v in op.errors.items()
                      if k != "ConditionalCheckFailedException"}
        assert not unexpected and not run.total.transport_errors
        print(f"\n{format_table(result)}\n")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
