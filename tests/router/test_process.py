"""`python -m router` as a real process: reads topology.json, binds its host:port, serves, and
exits cleanly on SIGTERM. Its nodes do not exist here (nothing listens on their ports), which
also shows that a router comes up even when the metadata group cannot be reached."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from deploy.specs import grpc_env
from dynalab.topology import topology_to_dict
from tests.router.conftest import make_topology


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_router_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    topology = make_topology()
    port = free_port()
    region = topology.regions[0]
    topology = replace(topology, regions=(replace(region, routers=(
        replace(region.routers[0], http_port=port),)),))
    (tmp_path / "topology.json").write_text(json.dumps(topology_to_dict(topology)))
    log = (tmp_path / "router.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "router", "--data-dir", str(tmp_path), "--id", "r1",
         "--startup-wait-ms", "0"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **grpc_env(), "PYTHONUNBUFFERED": "1"})
    try:
        body = ""
        for _ in range(100):  # bounded: up to ~10 s for the interpreter to start and bind
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    body = response.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert body == "healthy: dynamodb.us-east-1.amazonaws.com "
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()
    output = (tmp_path / "router.log").read_text()
    assert "serving DynamoDB for us-east-1" in output
    assert "Traceback" not in output


def test_unknown_router_id_fails_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "topology.json").write_text(json.dumps(topology_to_dict(make_topology())))
    result = subprocess.run([sys.executable, "-m", "router", "--data-dir", str(tmp_path),
                             "--id", "nobody"], capture_output=True, text=True, timeout=30,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2
    assert "no router 'nobody'" in result.stderr
