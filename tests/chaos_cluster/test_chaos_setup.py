"""Chaos at `up` (deploy.chaos_setup) and the `dynalab chaos` command on supervised processes:
the Toxiproxy server started as a real process by the supervisor, healthy only with every proxy
and standing latency in place; faults from the CLI; `dynalab status` listing them; heal."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from chaos import commands as chaos_cli
from deploy import commands as deploy_cli
from deploy.chaos_setup import (SERVER_ENV, TOXIPROXY_CONFIG, ToxiproxyReady, chaos_specs,
                                prepare_links, toxiproxy_argv)
from deploy.ports import assign_ports
from deploy.specs import build_specs, write_topology_json
from deploy.supervisor import Supervisor
from dynalab.links import clock_offset_path, load_plan, read_clock_offset_ms
from dynalab.topology import ChaosSpec, Topology
from tests.chaos.helpers import EchoServer
from tests.chaos_cluster.conftest import reachable, two_regions, wait_for
from tests.deploy.conftest import data_dir, listener_spec  # noqa: F401  (fixture)

NAMES = [f"{p}-{x}1" for p in ("use1", "euw1") for x in "abc"] + [
    "use1-router", "euw1-router", "replicator-us-east-1", "replicator-eu-west-1"]


def _topology(data_dir: Path, chaos: ChaosSpec, ports: dict[str, int] | None = None) -> Topology:
    ports = ports or assign_ports(data_dir, NAMES)
    api_port = assign_ports(data_dir, ["toxiproxy"])["toxiproxy"] if chaos.enabled else 0
    return two_regions(ports, ChaosSpec(chaos.enabled, api_port, chaos.toxiproxy_host,
                                        chaos.inter_az_latency_ms,
                                        chaos.inter_region_latency_ms))


def test_chaos_off_writes_no_plan_and_removes_an_old_one(data_dir: Path) -> None:
    (data_dir / "links.json").write_text("{}")
    topology = _topology(data_dir, ChaosSpec())
    assert prepare_links(topology, data_dir) is None
    assert load_plan(data_dir) is None
    assert chaos_specs(topology, data_dir) == []
    assert [s.kind for s in build_specs(topology, data_dir)][0] == "node"


def test_chaos_on_keeps_proxy_ports_and_writes_the_server_config(data_dir: Path) -> None:
    topology = _topology(data_dir, ChaosSpec(enabled=True))
    first = prepare_links(topology, data_dir)
    again = prepare_links(topology, data_dir)
    assert first is not None and first == again == load_plan(data_dir)
    config = json.loads((data_dir / TOXIPROXY_CONFIG).read_text())
    assert [(c["name"], c["listen"], c["upstream"]) for c in config] == \
        [(p.name, p.listen, p.upstream) for p in first.proxies]
    process_ports = {e.port for e in topology.endpoints().values()}
    assert not process_ports & {int(p.listen.rsplit(":", 1)[1]) for p in first.proxies}
    specs = build_specs(topology, data_dir)
    assert (specs[0].name, specs[0].kind) == ("toxiproxy", "toxiproxy")
    assert isinstance(specs[0].health, ToxiproxyReady)


def test_the_real_server_is_used_when_on_path(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "toxiproxy-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(SERVER_ENV, raising=False)
    chaos = ChaosSpec(enabled=True, toxiproxy_api_port=8474)
    argv = toxiproxy_argv(chaos, Path("/x.json"))
    assert argv == (str(fake), "-host", "127.0.0.1", "-port", "8474", "-config", "/x.json")
    monkeypatch.setenv(SERVER_ENV, "builtin")
    assert toxiproxy_argv(chaos, Path("/x.json"))[1:5] == ("-m", "dynalab.cli", "toxiproxy",
                                                           "--host")


def _run_chaos(data_dir: Path, *argv: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = chaos_cli.main(["chaos", "--data-dir", str(data_dir), *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_supervised_toxiproxy_with_cli_faults_status_restart_and_heal(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(SERVER_ENV, "builtin")
    echoes = {name: EchoServer() for name in NAMES if "router" not in name}
    try:
        ports = {n: int(e.address.rsplit(":", 1)[1]) for n, e in echoes.items()}
        ports |= assign_ports(data_dir, ["use1-router", "euw1-router"])
        topology = _topology(data_dir, ChaosSpec(enabled=True, inter_az_latency_ms=3), ports)
        write_topology_json(topology, data_dir)
        supervisor = Supervisor(data_dir)
        supervisor.start(chaos_specs(topology, data_dir), deadline_s=60)
        try:
            _exercise(data_dir, capsys)
        finally:
            supervisor.stop_all()
    finally:
        for echo in echoes.values():
            echo.close()


def _exercise(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = load_plan(data_dir)
    assert plan is not None
    a_to_b = plan.proxy("az:us-east-1a", "use1-b1")
    assert a_to_b is not None
    # Healthy means: every proxy there and the standing latency set.
    status = _run_chaos(data_dir, "status", "--json", capsys=capsys)
    network = json.loads(status)["network"]
    assert network["proxies"] == len(plan.proxies)
    assert network["baseline_toxics"] == sum(p.cross_az for p in plan.proxies)
    assert reachable(a_to_b.listen)

    out = _run_chaos(data_dir, "isolate", "az", "us-east-1b", capsys=capsys)
    assert "active as f1" in out and not reachable(a_to_b.listen)
    assert deploy_cli.main(["status", "--data-dir", str(data_dir)]) == 0
    assert "f1    isolate AZ us-east-1b" in capsys.readouterr().out

    # A restarted server comes back with its proxies from --config, and the engine puts the
    # standing latencies and the still-active isolation back.
    _run_chaos(data_dir, "restart", "toxiproxy", capsys=capsys)
    assert wait_for(lambda: not reachable(a_to_b.listen)) and not reachable(a_to_b.listen)
    network = json.loads(_run_chaos(data_dir, "status", "--json", capsys=capsys))["network"]
    assert network["baseline_toxics"] == sum(p.cross_az for p in plan.proxies)

    out = _run_chaos(data_dir, "heal", capsys=capsys)
    assert "network back to the baseline" in out
    assert wait_for(lambda: reachable(a_to_b.listen))
    assert "0 active fault(s)" in _run_chaos(data_dir, "status", capsys=capsys)


def test_process_faults_from_the_cli_and_heal_undoes_them(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topology = _topology(data_dir, ChaosSpec())
    write_topology_json(topology, data_dir)
    supervisor = Supervisor(data_dir)
    supervisor.start([listener_spec(n, topology.node(n).grpc_port) for n in ("use1-a1", "use1-b1")])
    try:
        _run_chaos(data_dir, "kill", "use1-a1", capsys=capsys)
        _run_chaos(data_dir, "pause", "use1-b1", capsys=capsys)
        _run_chaos(data_dir, "skew", "use1-b1", "--offset-ms", "-4000", capsys=capsys)
        states = {s.name: s.state for s in supervisor.status()}
        assert states == {"use1-a1": "dead", "use1-b1": "paused"}
        assert read_clock_offset_ms(data_dir, "use1-b1") == -4000
        listed = _run_chaos(data_dir, "status", capsys=capsys)
        assert "3 active fault(s)" in listed and "links: direct" in listed
        assert deploy_cli.main(["status", "--json", "--data-dir", str(data_dir)]) == 0
        status = json.loads(capsys.readouterr().out)
        assert [f["kind"] for f in status["faults"]] == ["kill", "pause", "skew"]
        assert status["running"] is True
        out = _run_chaos(data_dir, "heal", capsys=capsys)
        assert "restarted use1-a1" in out and "resumed use1-b1" in out
        assert {s.name: s.state for s in supervisor.status()} == \
            {"use1-a1": "alive", "use1-b1": "alive"}
        assert not clock_offset_path(data_dir, "use1-b1").exists()
        # One-shot actions clear what they supersede.
        _run_chaos(data_dir, "pause", "use1-a1", capsys=capsys)
        _run_chaos(data_dir, "resume", "use1-a1", capsys=capsys)
        assert "0 active fault(s)" in _run_chaos(data_dir, "status", capsys=capsys)
        # Network faults need chaos on; the CLI says so and exits 1.
        assert chaos_cli.main(["chaos", "--data-dir", str(data_dir), "isolate", "az",
                               "us-east-1b"]) == 1
        assert "enabled: true" in capsys.readouterr().err
    finally:
        supervisor.stop_all()


def test_chaos_cli_without_a_cluster_says_so(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert chaos_cli.main(["chaos", "--data-dir", str(tmp_path), "heal"]) == 1
    assert "dynalab up" in capsys.readouterr().err
