"""Fixtures for the chaos tests: a two-region topology whose nodes and replicators are TCP echo
servers, dynalab's Toxiproxy server in-process (ServerThread), and the link plan and data dir
that deploy would write for them (deploy.chaos_setup.prepare_links). All on 127.0.0.1."""
from __future__ import annotations

import json
import random
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from chaos.faults import FaultContext, sync_network
from chaos.toxiproxy import ServerThread
from deploy.chaos_setup import prepare_links
from deploy.specs import write_topology_json
from dynalab.links import LinkPlan
from dynalab.topology import AZ, ChaosSpec, NodeSpec, Region, RouterSpec, Topology
from tests import waiting
from tests.chaos.helpers import EchoServer

DEADLINE_S = 5.0


def two_regions(ports: dict[str, int], chaos: ChaosSpec) -> Topology:
    """us-east-1 and eu-west-1, AZs a/b/c with one node each, a router in each region's AZ a."""
    regions = []
    for name, prefix in (("us-east-1", "use1"), ("eu-west-1", "euw1")):
        azs = tuple(AZ(f"{name}{x}", (NodeSpec(f"{prefix}-{x}1", name, f"{name}{x}",
                                               grpc_port=ports[f"{prefix}-{x}1"]),))
                    for x in "abc")
        router = RouterSpec(f"{prefix}-router", name, f"{name}a",
                            http_port=ports[f"{prefix}-router"])
        regions.append(Region(name, azs, (router,), ports[f"replicator-{name}"]))
    return Topology(tuple(regions), chaos=chaos)


@dataclass
class Net:
    """A planned cluster of echo servers behind the Toxiproxy server."""

    data_dir: Path
    topology: Topology
    plan: LinkPlan
    context: FaultContext
    server: ServerThread

    def address(self, source_group: str, dest: str) -> str:
        proxy = self.plan.proxy(source_group, dest)
        assert proxy is not None, (source_group, dest)
        return proxy.listen

    def proxy_state(self) -> dict[str, dict[str, Any]]:
        assert self.context.api is not None
        return self.context.api.proxies()


def echo_round_trip(address: str, payload: bytes = b"ping",
                    timeout_s: float = DEADLINE_S) -> bytes:
    """What comes back for `payload` through `address` (raises OSError when cut)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(payload)
        data = b""
        while len(data) < len(payload):  # each pass gains a byte or ends
            chunk = sock.recv(len(payload) - len(data))
            if not chunk:
                break
            data += chunk
        return data


def reachable(address: str, timeout_s: float = 1.0) -> bool:
    try:
        return echo_round_trip(address, timeout_s=timeout_s) == b"ping"
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout_s: float = DEADLINE_S) -> bool:
    return waiting.wait_for(condition, timeout_s)


@pytest.fixture
def echoes() -> Iterator[dict[str, EchoServer]]:
    names = [f"{p}-{x}1" for p in ("use1", "euw1") for x in "abc"]
    names += ["replicator-us-east-1", "replicator-eu-west-1"]
    servers = {name: EchoServer() for name in names}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_net(data_dir: Path, echoes: dict[str, EchoServer], server: ServerThread,
             inter_az_ms: int = 0, inter_region_ms: int = 0) -> Net:
    ports = {name: int(echo.address.rsplit(":", 1)[1]) for name, echo in echoes.items()}
    ports |= {"use1-router": _free_port(), "euw1-router": _free_port()}  # routers: not dialled
    chaos = ChaosSpec(enabled=True, toxiproxy_api_port=server.server.port,
                      inter_az_latency_ms=inter_az_ms, inter_region_latency_ms=inter_region_ms)
    topology = two_regions(ports, chaos)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_topology_json(topology, data_dir)
    plan = prepare_links(topology, data_dir)
    assert plan is not None
    context = FaultContext.from_data_dir(data_dir)
    # What the server's --config does at `up`, plus the standing latencies.
    sync_network(context, [])
    return Net(data_dir, topology, plan, context, server)


@pytest.fixture
def toxiproxy_server() -> Iterator[ServerThread]:
    server = ServerThread(port=0, rng=random.Random(6))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def net(tmp_path: Path, echoes: dict[str, EchoServer], toxiproxy_server: ServerThread) -> Net:
    return make_net(tmp_path / "data", echoes, toxiproxy_server)


def active_json(data_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((data_dir / "faults" / "active.json").read_text())
    return document
