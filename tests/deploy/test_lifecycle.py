"""The lifecycle commands on the default topology, every process played by a TCP listener."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from deploy import lifecycle
from deploy.ports import resolve_ports
from deploy.supervisor import ProcessSpec, Supervisor, SupervisorError, TcpCheck
from deploy.topology_yaml import parse_topology
from dynalab.topology import Topology
from tests.deploy.conftest import LISTENER, gone, proc_state, python
from tests.waiting import wait_for

pytestmark = pytest.mark.cluster


def listeners(topology: Topology, data_dir: Path) -> list[ProcessSpec]:
    """A stand-in for the real spec builder: one listener per process of the topology."""
    kinds = topology.kinds()
    return [ProcessSpec(pid, kinds[pid], python(LISTENER, str(e.port)),  # type: ignore[arg-type]
                        TcpCheck(e.port, e.host), ports={"listen": e.port})
            for pid, e in topology.endpoints().items()]


def test_up_status_faults_down_and_up_again(data_dir: Path) -> None:
    topology = lifecycle.prepare(data_dir)
    info = lifecycle.up(data_dir, topology, listeners, detach=True, deadline_s=30)
    try:
        assert json.loads((data_dir / "cluster.json").read_text()) == info
        check_cluster_json(info, topology)
        east = info["regions"]["us-east-1"]
        assert TcpCheck(int(east["endpoint_url"].rsplit(":", 1)[1]))()

        text = lifecycle.status(data_dir)
        assert text.splitlines()[0].split() == ["NAME", "KIND", "STATE", "PID", "PORTS", "UPTIME"]
        assert sum(" alive " in line for line in text.splitlines()) == 10
        report = json.loads(lifecycle.status(data_dir, as_json=True))
        assert report["running"] and len(report["processes"]) == 10

        node_pid = east["nodes"][1]["pid"]
        assert lifecycle.pause(data_dir, "use1-b1") == "paused use1-b1 (SIGSTOP)"
        assert proc_state(node_pid) == "T" and "paused" in lifecycle.status(data_dir)
        lifecycle.resume(data_dir, "use1-b1")
        assert proc_state(node_pid) in ("R", "S")
        lifecycle.kill(data_dir, "use1-b1")
        assert gone(node_pid)
        assert "restarted use1-b1" in lifecycle.restart(data_dir, "use1-b1")
        fresh = json.loads((data_dir / "cluster.json").read_text())
        new_pid = fresh["regions"]["us-east-1"]["nodes"][1]["pid"]
        assert new_pid != node_pid and proc_state(new_pid) in ("R", "S")

        with pytest.raises(SupervisorError, match="no process named 'nope'"):
            lifecycle.kill(data_dir, "nope")
        with pytest.raises(lifecycle.LifecycleError, match="run `dynalab down` first"):
            lifecycle.wipe(data_dir)
        with pytest.raises(SupervisorError, match="already running"):
            lifecycle.up(data_dir, topology, listeners, detach=True)
        with pytest.raises(lifecycle.LifecycleError, match="already running"):
            lifecycle.prepare(data_dir)
    finally:
        pids = [s.pid for s in Supervisor(data_dir).status()]
        assert "stopped 10 process(es)" in lifecycle.down(data_dir)
    assert all(gone(pid) for pid in pids)
    after = json.loads((data_dir / "cluster.json").read_text())
    assert after["regions"]["us-east-1"]["nodes"][0]["pid"] is None
    assert lifecycle.down(data_dir).startswith("nothing was running")
    assert lifecycle.status(data_dir).startswith("no cluster")

    # Data and addresses outlive processes: the same cluster comes back on the same ports.
    (data_dir / "use1-a1.db").write_text("items")
    again = lifecycle.prepare(data_dir)
    assert again == topology
    info2 = lifecycle.up(data_dir, again, listeners, detach=True, deadline_s=30)
    lifecycle.down(data_dir)
    assert info2["regions"]["eu-west-1"]["endpoint_url"] == info["regions"]["eu-west-1"]["endpoint_url"]
    assert (data_dir / "use1-a1.db").read_text() == "items"

    assert lifecycle.wipe(data_dir) == f"wiped {data_dir}"
    assert not data_dir.exists()


def check_cluster_json(info: dict, topology: Topology) -> None:
    assert set(info["regions"]) == {"us-east-1", "eu-west-1"}
    for name, region in info["regions"].items():
        assert region["endpoint_url"] == region["routers"][0]["endpoint_url"]
        assert region["endpoint_url"].startswith("http://127.0.0.1:")
        assert region["toxiproxy_api_url"] is None  # chaos is off by default
        assert [n["az"] for n in region["nodes"]] == [f"{name}{x}" for x in "abc"]
        for node in region["nodes"]:
            assert set(node) == {"id", "region", "az", "pid", "addresses"}
            assert node["region"] == name and proc_state(node["pid"]) in ("R", "S")
            assert node["addresses"]["grpc"] == f"127.0.0.1:{topology.node(node['id']).grpc_port}"
        assert proc_state(region["replicator"]["pid"]) in ("R", "S")


CHAOS = """\
chaos: {enabled: true}
regions:
  r1:
    azs: {r1a: {nodes: [a]}, r1b: {nodes: [b]}, r1c: {nodes: [c]}}
    routers: [{id: rt, az: r1c}]
"""


def test_foreground_up_runs_until_stopped(data_dir: Path) -> None:
    config = data_dir.parent / "chaos.yaml"
    config.write_text(CHAOS)
    topology = lifecycle.prepare(data_dir, config)
    assert (data_dir / "topology.yaml").read_text() == CHAOS  # kept for the next plain `up`
    assert lifecycle.prepare(data_dir) == topology
    stop, ready = threading.Event(), []
    thread = threading.Thread(target=lifecycle.up, args=(data_dir, topology, listeners),
                              kwargs={"detach": False, "stop": stop, "on_ready": ready.append})
    thread.start()
    try:
        assert wait_for(lambda: bool(ready), 30)
        info = ready[0]
        url = info["regions"]["r1"]["toxiproxy_api_url"]
        assert url == f"http://127.0.0.1:{topology.chaos.toxiproxy_api_port}"
        assert info["toxiproxy"]["api_url"] == url and info["toxiproxy"]["pid"]
        pids = [s.pid for s in Supervisor(data_dir).status()]
        assert len(pids) == 6 and all(proc_state(p) in ("R", "S") for p in pids)  # 3+rt+repl+tox
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive() and all(gone(p) for p in pids)


def test_up_refuses_a_foreign_directory_and_unresolved_ports(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(lifecycle.LifecycleError, match="not a dynalab data dir"):
        lifecycle.prepare(tmp_path)
    with pytest.raises(lifecycle.LifecycleError, match="not a dynalab data dir"):
        lifecycle.wipe(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    fresh = tmp_path / "fresh"
    with pytest.raises(lifecycle.LifecycleError, match="every port resolved"):
        lifecycle.up(fresh, parse_topology(CHAOS), listeners, detach=True)
    assert resolve_ports(parse_topology(CHAOS), fresh).chaos.toxiproxy_api_port > 0
