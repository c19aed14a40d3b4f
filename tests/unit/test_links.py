"""The link plan (dynalab.links): every planned link has exactly one proxy, addresses resolve to
the proxy or, without a plan, to the destination itself; the plan file round-trips; the clock
skew seam reads what `dynalab chaos skew` writes."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dynalab.links import (ClockSkew, Link, LinkPlan, LinkPlanError, baseline_toxics,
                           clock_offset_path, connect_address, load_plan, plan_links,
                           planned_links, proxy_names, read_active_faults, read_clock_offset_ms,
                           save_plan)
from dynalab.topology import (AZ, ChaosSpec, NodeSpec, Region, RouterSpec, Topology,
                              topology_from_dict, topology_to_dict)


def _region(name: str, prefix: str, nodes_per_az: int = 1, routers_in: tuple[str, ...] = ("a",),
            base_port: int = 21000) -> Region:
    port = iter(range(base_port, base_port + 100))
    azs = tuple(AZ(f"{name}{letter}", tuple(
        NodeSpec(f"{prefix}-{letter}{i}", name, f"{name}{letter}", grpc_port=next(port))
        for i in range(1, nodes_per_az + 1))) for letter in "abc")
    routers = tuple(RouterSpec(f"{prefix}-router-{letter}", name, f"{name}{letter}",
                               http_port=next(port)) for letter in routers_in)
    return Region(name, azs, routers, replicator_port=next(port))


def _topology(nodes_per_az: int = 1, routers_in: tuple[str, ...] = ("a",),
              chaos: ChaosSpec | None = None) -> Topology:
    return Topology((_region("us-east-1", "use1", nodes_per_az, routers_in, 21000),
                     _region("eu-west-1", "euw1", nodes_per_az, routers_in, 22000)),
                    chaos=chaos or ChaosSpec(enabled=True, toxiproxy_api_port=23000,
                                             inter_az_latency_ms=2, inter_region_latency_ms=80))


def _plan(topology: Topology) -> LinkPlan:
    return plan_links(topology, {name: 30000 + i for i, name in enumerate(proxy_names(topology))})


def _group_of(topology: Topology, link: Link) -> str:
    kinds = topology.kinds()
    if kinds[link.source] == "replicator":
        return "region:" + next(r.name for r in topology.regions if r.replicator_id == link.source)
    azs = {p.id: p.az for p in topology.nodes} | {p.id: p.az for p in topology.routers}
    az = azs[link.source]
    return f"az:{az}"


@pytest.mark.parametrize("nodes_per_az,routers_in", [(1, ("a",)), (2, ("a", "b")), (3, ("c",))])
def test_every_link_is_covered_by_exactly_one_proxy(nodes_per_az: int,
                                                    routers_in: tuple[str, ...]) -> None:
    topology = _topology(nodes_per_az, routers_in)
    plan = _plan(topology)
    links = planned_links(topology)
    assert len(set(links)) == len(links)
    served: dict[str, int] = {p.name: 0 for p in plan.proxies}
    for link in links:
        matching = [p for p in plan.proxies
                    if p.dest == link.dest and p.source_group == _group_of(topology, link)]
        assert len(matching) == 1, link
        served[matching[0].name] += 1
    assert all(count >= 1 for count in served.values()), served  # no proxy serves nothing
    assert len({p.name for p in plan.proxies}) == len(plan.proxies)
    assert len({p.listen for p in plan.proxies}) == len(plan.proxies)


def test_default_shape_has_the_expected_proxies() -> None:
    plan = _plan(_topology())
    names = {p.name for p in plan.proxies}
    # per region: 6 cross-AZ node pairs + the router's AZ to its own node; plus 2 replicator links
    assert len(names) == 2 * 7 + 2
    assert "az:us-east-1a->node:use1-b1" in names
    assert "az:us-east-1a->node:use1-a1" in names  # the router's same-AZ link
    assert "az:us-east-1b->node:use1-b1" not in names  # nothing in b connects to b1
    assert "region:us-east-1->replicator:replicator-eu-west-1" in names
    assert not any("eu-west-1" in n and "use1" in n for n in names)  # no cross-region node links


def test_connect_address_goes_through_the_proxy_of_the_source_group() -> None:
    topology = _topology(nodes_per_az=2, routers_in=("a", "b"))
    plan = _plan(topology)
    endpoints = topology.endpoints()
    for link in planned_links(topology):
        address = connect_address(topology, plan, link.source, link.dest)
        proxy = next(p for p in plan.proxies if p.listen == address)
        assert proxy.dest == link.dest
        assert proxy.upstream == endpoints[link.dest].address
    # Two sources in one AZ share the proxy to a destination.
    assert connect_address(topology, plan, "use1-a1", "use1-b1") == \
        connect_address(topology, plan, "use1-router-a", "use1-b1")
    assert connect_address(topology, plan, "use1-a1", "use1-b1") != \
        connect_address(topology, plan, "use1-c1", "use1-b1")


def test_without_a_plan_or_for_unplanned_links_the_address_is_direct() -> None:
    topology = _topology()
    plan = _plan(topology)
    for link in planned_links(topology):
        assert connect_address(topology, None, link.source, link.dest) == \
            topology.endpoints()[link.dest].address
    # Not planned: a replicator to its own region's node, a router to a replicator, cross-region
    # node links.
    for source, dest in [("replicator-us-east-1", "use1-a1"),
                         ("use1-router-a", "replicator-us-east-1"), ("use1-a1", "euw1-b1")]:
        assert connect_address(topology, plan, source, dest) == \
            topology.endpoints()[dest].address


def test_a_stale_plan_is_an_error_not_a_silent_bypass() -> None:
    topology = _topology()
    plan = LinkPlan(tuple(p for p in _plan(topology).proxies if p.dest != "use1-b1"))
    with pytest.raises(LinkPlanError, match="stale"):
        connect_address(topology, plan, "use1-a1", "use1-b1")
    with pytest.raises(LinkPlanError, match="no listen port"):
        plan_links(topology, {})


def test_plan_file_round_trips_and_none_removes_it(tmp_path: Path) -> None:
    assert load_plan(tmp_path) is None
    plan = _plan(_topology())
    save_plan(tmp_path, plan)
    assert load_plan(tmp_path) == plan
    save_plan(tmp_path, None)
    assert load_plan(tmp_path) is None
    (tmp_path / "links.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="format"):
        load_plan(tmp_path)


def test_plan_of_a_topology_read_back_from_json_is_the_same() -> None:
    topology = _topology()
    again = topology_from_dict(json.loads(json.dumps(topology_to_dict(topology))))
    assert _plan(again) == _plan(topology)


def test_baseline_toxics_are_the_standing_latencies() -> None:
    topology = _topology()
    plan = _plan(topology)
    toxics = dict(baseline_toxics(plan, topology.chaos))
    for proxy in plan.proxies:
        expected = 80 if proxy.cross_region else 2 if proxy.cross_az else None
        if expected is None:
            assert proxy.name not in toxics
        else:
            assert toxics[proxy.name]["attributes"]["latency"] == expected
            assert toxics[proxy.name]["type"] == "latency"
    assert "az:us-east-1a->node:use1-a1" not in toxics  # same AZ: no standing latency
    quiet = dataclasses.replace(topology.chaos, inter_az_latency_ms=0, inter_region_latency_ms=0)
    assert baseline_toxics(plan, quiet) == ()


def test_clock_offset_is_read_from_the_skew_file_and_bad_files_read_as_zero(
        tmp_path: Path) -> None:
    assert read_clock_offset_ms(tmp_path, "n1") == 0
    path = clock_offset_path(tmp_path, "n1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"offset_ms": -2500}))
    assert read_clock_offset_ms(tmp_path, "n1") == -2500
    skew = ClockSkew(tmp_path, "n1", reread_s=0.0)
    assert skew.offset_ms() == -2500
    path.write_text("{half a fi")
    assert skew.offset_ms() == 0
    cached = ClockSkew(tmp_path, "n1", reread_s=3600.0)
    path.write_text(json.dumps({"offset_ms": 10}))
    assert cached.offset_ms() == 10
    path.write_text(json.dumps({"offset_ms": 20}))
    assert cached.offset_ms() == 10  # re-read only after reread_s


def test_read_active_faults_tolerates_missing_and_garbage(tmp_path: Path) -> None:
    assert read_active_faults(tmp_path) == []
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "active.json").write_text("not json")
    assert read_active_faults(tmp_path) == []
    (tmp_path / "faults" / "active.json").write_text(json.dumps(
        {"faults": [{"id": "f1", "kind": "kill"}]}))
    assert read_active_faults(tmp_path) == [{"id": "f1", "kind": "kill"}]
