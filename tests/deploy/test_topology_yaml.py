"""Topology files: the default loads; every kind of mistake is reported with file and line."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.topology_yaml import (
    DEFAULT_TOPOLOGY, default_topology, load_topology, parse_topology, to_yaml,
)
from dynalab.topology import AZ, ChaosSpec, NodeSpec, Region, RouterSpec, Topology, TopologyError


def test_default_topology_is_two_regions_of_three_azs() -> None:
    topology = default_topology()
    assert [r.name for r in topology.regions] == ["us-east-1", "eu-west-1"]
    for region in topology.regions:
        assert [az.name for az in region.azs] == [f"{region.name}{x}" for x in "abc"]
        assert [len(az.nodes) for az in region.azs] == [1, 1, 1]
        assert len(region.routers) == 1 and region.routers[0].az == f"{region.name}a"
    assert topology.vnodes == 8 and topology.replication_factor == 3
    assert topology.chaos == ChaosSpec(enabled=False, inter_region_latency_ms=0)
    endpoints = topology.endpoints()
    assert len(endpoints) == 10  # 6 nodes, 2 routers, 2 replicators; no Toxiproxy when chaos is off
    assert all(e.port == 0 and e.host == "127.0.0.1" for e in endpoints.values())


def test_default_topology_ships_as_package_data() -> None:
    assert DEFAULT_TOPOLOGY.parent.name == "deploy" and DEFAULT_TOPOLOGY.is_file()


GOOD = """\
vnodes: 4
chaos: {enabled: true, toxiproxy_api_port: 8474, inter_region_latency_ms: 100}
regions:
  r1:
    replicator_port: 7100
    azs:
      r1a: {nodes: [n1, {id: n2, host: 127.0.0.2, grpc_port: 7001}]}
      r1b: {nodes: [n3]}
      r1c: {nodes: [n4]}
    routers:
      - {id: router1, az: r1b, http_port: 8000}
"""


def test_a_full_file_loads_every_setting() -> None:
    topology = parse_topology(GOOD)
    assert topology.vnodes == 4
    assert topology.chaos == ChaosSpec(enabled=True, toxiproxy_api_port=8474,
                                       inter_region_latency_ms=100)
    assert topology.node("n1") == NodeSpec("n1", "r1", "r1a")
    assert topology.node("n2") == NodeSpec("n2", "r1", "r1a", "127.0.0.2", 7001)
    assert topology.routers == (RouterSpec("router1", "r1", "r1b", http_port=8000),)
    assert topology.region("r1").replicator_port == 7100
    assert topology.endpoints()["toxiproxy"].port == 8474


# (file text, line the error must name, words it must contain)
BAD = [
    ("regions:\n  r1:\n    azs: {}\n    routers: []\n    replicator_prot: 5\n", 5,
     "unknown key 'replicator_prot'"),
    (GOOD.replace("grpc_port: 7001", "grpc_port: seven"), 7, "grpc_port must be a int"),
    (GOOD.replace("grpc_port: 7001", "grpc_port: 70000"), 7, "not a port"),
    (GOOD.replace("r1c: {nodes: [n4]}", "r1c: {nodes: [n1]}"), 9, "node id n1 is already used"),
    (GOOD.replace("az: r1b", "az: r1z"), 11, "names AZ 'r1z'"),
    (GOOD.replace("      r1c: {nodes: [n4]}\n", ""), 4, "needs at least 3 AZs"),
    (GOOD.replace("r1c: {nodes: [n4]}", "r1c: {nodes: []}"), 9, "AZ r1c has no nodes"),
    (GOOD.replace("http_port: 8000", "http_port: 7001"), 11, "port 7001 is already used by node n2"),
    (GOOD.replace("enabled: true", "enabled: false"), 2, "chaos is not enabled"),
    (GOOD.replace("{id: router1", "{name: router1"), 11, "unknown key 'name'"),
    (GOOD + "  r1:\n    azs: {}\n    routers: []\n", 12, "'r1' appears twice"),
    (GOOD.replace("vnodes: 4", "vnodes: 0"), 1, "vnodes 0 must be in"),
    (GOOD.replace("routers:\n      - {id: router1, az: r1b, http_port: 8000}",
                  "routers: []"), 4, "has no routers"),
    (GOOD.replace("[n3]", "[n/3]"), 8, "node name 'n/3' is not valid"),
    (GOOD.replace("r1b: {nodes: [n3]}", "r1b: {nodes: [n3]"), 9, "not valid YAML"),
    ("vnodes: 8\n", 1, "missing 'regions'"),
    ("- just\n- a list\n", 1, "topology must be a mapping"),
]


@pytest.mark.parametrize(("text", "line", "words"), BAD, ids=[b[2] for b in BAD])
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "topo.yaml"
    path.write_text(text)
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message, message


def test_an_empty_or_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    with pytest.raises(TopologyError, match="empty.yaml:1: the topology file is empty"):
        load_topology(tmp_path / "empty.yaml")
    with pytest.raises(TopologyError, match="cannot read topology file"):
        load_topology(tmp_path / "absent.yaml")


# -- round trip ----------------------------------------------------------------------------------



@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    regions = []
    for r in range(draw(st.integers(1, 2))):
        name = f"reg-{r}"
        azs = tuple(AZ(f"{name}{chr(97 + a)}", tuple(
            NodeSpec(f"n{r}{a}{n}", name, f"{name}{chr(97 + a)}") for n in range(draw(st.integers(1, 3)))))
            for a in range(draw(st.integers(3, 4))))
        routers = (RouterSpec(f"rt{r}", name, azs[draw(st.integers(0, len(azs) - 1))].name),)
        regions.append(Region(name, azs, routers))
    topology = Topology(tuple(regions), vnodes=draw(st.integers(1, 64)),
                        chaos=ChaosSpec(enabled=draw(st.booleans())))
    ids = list(topology.endpoints())
    chosen = draw(st.lists(st.integers(1, 65535), min_size=len(ids), max_size=len(ids),
                           unique=True))
    zeroed = draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
    return topology.with_ports({pid: 0 if zero else port
                                for pid, port, zero in zip(ids, chosen, zeroed)})


@settings(max_examples=40, deadline=None)
@given(topologies())
def test_to_yaml_reads_back_to_an_equal_topology(topology: Topology) -> None:
    assert parse_topology(to_yaml(topology)) == topology


def test_default_file_text_has_no_surprises() -> None:
    text = DEFAULT_TOPOLOGY.read_text()
    assert "127.0.0.1" in text  # the comment saying where things bind
    assert parse_topology(to_yaml(default_topology())) == default_topology()
    assert textwrap.dedent(text) == text
