"""`dynalab bench` as a user runs it: options in; table, progress, JSON and PNG out."""
from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from chaos.bench import main
from dynalab.cli import main as dynalab_main
from tests.bench.conftest import FakeServer

pytestmark = pytest.mark.timeout(120)


def test_bench_writes_table_progress_json_and_png(fake_server: Callable[..., FakeServer],
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    server = fake_server()
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    code = dynalab_main(["bench", "--endpoint", server.endpoint, "--workload", "B", "--load",
                         "--records", "100", "--duration", "1", "--warmup", "1",
                         "--connections", "4", "--seed", "9", "--consistent-read",
                         "--json", str(out_json), "--png", str(out_png)])
    assert code == 0
    captured = capsys.readouterr()
    table = captured.out
    assert "workload B" in table and "seed 9" in table and "load generator CPU" in table
    assert [line.split()[0] for line in table.splitlines() if line.startswith(("read", "update",
                                                                             "total", "insert"))] \
        == ["insert", "read", "update", "total"]
    assert "[run    1s]" in captured.err and "warm-up" in captured.err  # the progress line
    doc = json.loads(out_json.read_text())
    assert doc["format"] == "dynalab-bench/1"
    assert doc["settings"]["workload"] == "B" and doc["settings"]["consistent_read"] is True
    run = doc["run"]
    assert [op["name"] for op in run["ops"]] == ["read", "update"]
    assert run["total"]["count"] == sum(op["count"] for op in run["ops"]) > 0
    assert [s["warmup"] for s in run["series"]] == [True, False]
    assert set(run["cpu"]) >= {"workers_percent_of_core", "per_worker_percent"}
    assert run["total"]["latency"]["p99_us"] >= run["total"]["latency"]["p50_us"] > 0
    assert doc["load"]["total"]["count"] == 100
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["--endpoint", "http://127.0.0.1:1", "--workload", "Z"],
                                  ["--workload", "A"],  # no endpoint and no --sign
                                  ["--endpoint", "http://127.0.0.1:1", "--records", "0"]])
def test_bench_rejects_bad_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *argv])
    assert exited.value.code == 2


def test_bench_reports_an_unreachable_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["bench", "--endpoint", f"http://127.0.0.1:{port}", "--duration", "1",
                 "--timeout", "2", "--quiet"])
    assert code == 1
    assert "DescribeTable" in capsys.readouterr().err
