"""The topology model validates itself: an invalid cluster description cannot be built."""
from __future__ import annotations

from dataclasses import FrozenInstanceError, replace

import pytest

from dynalab.topology import (
    AZ, TOXIPROXY_ID, ChaosSpec, Endpoint, NodeSpec, Region, RouterSpec, Topology, TopologyError,
)


def region(name: str = "r1", azs: int = 3, nodes_per_az: int = 1, router_az: int = 0) -> Region:
    zones = tuple(AZ(f"{name}{chr(97 + a)}", tuple(NodeSpec(f"{name}-{chr(97 + a)}{n}", name,
                                                            f"{name}{chr(97 + a)}")
                                                   for n in range(nodes_per_az)))
                  for a in range(azs))
    return Region(name, zones, (RouterSpec(f"{name}-router", name, zones[router_az].name),))


def test_a_valid_topology_and_its_lookups() -> None:
    topology = Topology((region("r1", nodes_per_az=2), region("r2")))
    assert [n.id for n in topology.nodes][:3] == ["r1-a0", "r1-a1", "r1-b0"]
    assert len(topology.nodes) == 9 and len(topology.routers) == 2
    assert topology.az_of("r1-b1") == "r1b" and topology.node("r2-c0").region == "r2"
    assert topology.region("r2").replicator_id == "replicator-r2"
    assert topology.kinds()["replicator-r1"] == "replicator"
    assert topology.endpoints()["r1-router"] == Endpoint("127.0.0.1", 0)
    assert Endpoint("127.0.0.1", 80).address == "127.0.0.1:80"
    with pytest.raises(TopologyError, match="no node 'x'"):
        topology.node("x")
    with pytest.raises(TopologyError, match="no region 'r9'"):
        topology.region("r9")


def test_values_are_frozen() -> None:
    topology = Topology((region(),))
    with pytest.raises(FrozenInstanceError):
        topology.vnodes = 3  # type: ignore[misc]


def test_with_ports_replaces_only_the_named_ports() -> None:
    topology = Topology((region(),), chaos=ChaosSpec(enabled=True))
    ported = topology.with_ports({"r1-a0": 7001, "r1-router": 8000, "replicator-r1": 7100,
                                  TOXIPROXY_ID: 8474})
    assert ported.node("r1-a0").grpc_port == 7001 and ported.node("r1-b0").grpc_port == 0
    assert ported.routers[0].http_port == 8000
    assert ported.region("r1").replicator_port == 7100
    assert ported.chaos.toxiproxy_api_port == 8474
    assert topology.node("r1-a0").grpc_port == 0  # the original is unchanged


@pytest.mark.parametrize(("build", "entry", "words"), [
    (lambda: Topology((region(azs=2),)), ("region", "r1"), "needs at least 3 AZs"),
    (lambda: Topology((region(azs=2),), replication_factor=2), None, None),
    (lambda: Topology(()), ("topology", ""), "no regions"),
    (lambda: Topology((region(),), vnodes=0), ("topology", ""), "vnodes"),
    (lambda: Topology((region(), region())), ("region", "r1"), "appears twice"),
    (lambda: AZ("a", ()), ("az", "a"), "has no nodes"),
    (lambda: NodeSpec("n 1", "r", "a"), ("node", "n 1"), "not valid"),
    (lambda: NodeSpec("n1", "r", "a", grpc_port=70000), ("node", "n1"), "not a port"),
    (lambda: NodeSpec("n1", "r", "a", host=""), ("node", "n1"), "host"),
    (lambda: replace(region(), routers=(RouterSpec("rt", "r1", "zz"),)), ("router", "rt"),
     "names AZ 'zz'"),
    (lambda: replace(region(), routers=()), ("region", "r1"), "no routers"),
    (lambda: ChaosSpec(inter_az_latency_ms=5), ("chaos", "chaos"), "chaos is not enabled"),
    (lambda: ChaosSpec(enabled=True, inter_region_latency_ms=-1), ("chaos", "chaos"), ">= 0"),
])
def test_invalid_topologies_are_refused(build, entry, words) -> None:
    if words is None:
        build()  # valid: the AZ count follows the replication factor
        return
    with pytest.raises(TopologyError) as caught:
        build()
    assert caught.value.entry == entry and words in caught.value.message


def test_process_ids_are_unique_across_kinds() -> None:
    r1 = region()
    clash = replace(r1, routers=(RouterSpec("r1-a0", "r1", "r1a"),))
    with pytest.raises(TopologyError, match="router id r1-a0 is already used by node r1-a0"):
        Topology((clash,))
    reserved = replace(r1, routers=(RouterSpec(TOXIPROXY_ID, "r1", "r1a"),))
    with pytest.raises(TopologyError, match="reserved"):
        Topology((reserved,))


def test_fixed_ports_are_unique() -> None:
    topology = Topology((region(),)).with_ports({"r1-a0": 7001})
    with pytest.raises(TopologyError, match="port 7001 is already used by node r1-a0") as caught:
        topology.with_ports({"r1-router": 7001})
    assert caught.value.entry == ("router", "r1-router")
    # Automatic (0) ports are not clashes.
    assert Topology((region(),)).with_ports({"r1-a0": 0}).node("r1-a0").grpc_port == 0


def test_a_node_must_sit_where_it_is_listed() -> None:
    r1 = region()
    wrong = AZ("r1a", (NodeSpec("x", "r1", "r1b"),))
    with pytest.raises(TopologyError, match="listed under r1/r1a but says r1/r1b"):
        replace(r1, azs=(wrong, *r1.azs[1:]))


def test_dict_form_round_trips_the_default_topology() -> None:
    import json

    from deploy.topology_yaml import default_topology
    from dynalab.topology import topology_from_dict, topology_to_dict

    topology = default_topology().with_ports({"use1-a1": 7001})
    again = topology_from_dict(json.loads(json.dumps(topology_to_dict(topology))))
    assert again == topology
    assert again.node("use1-a1").grpc_port == 7001
