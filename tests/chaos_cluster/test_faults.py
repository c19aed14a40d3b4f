"""Network fault units against dynalab's Toxiproxy server with real TCP echo servers behind the
proxies: a cut link refuses (or swallows) bytes, heal restores it, latency delays, faults compose,
and heal repairs a server that lost its proxies."""
from __future__ import annotations

import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from chaos.faults import (Bandwidth, FaultError, Flap, IsolateAz, IsolateRegion, Latency,
                          Partition, active_faults, apply_fault, fault_from_args, heal,
                          undo_fault)
from chaos.faults.api import ToxiproxyApi, ToxiproxyError
from chaos.toxiproxy import ServerThread
from dynalab.links import read_active_faults
from tests.chaos.helpers import EchoServer, http
from tests.chaos_cluster.conftest import (Net, active_json, echo_round_trip, make_net, reachable,
                                          wait_for)

A_TO_B = ("az:us-east-1a", "use1-b1")
B_TO_A = ("az:us-east-1b", "use1-a1")
A_TO_C = ("az:us-east-1a", "use1-c1")
C_TO_A = ("az:us-east-1c", "use1-a1")
A_TO_A = ("az:us-east-1a", "use1-a1")  # inside the AZ
US_TO_EU = ("region:us-east-1", "replicator-eu-west-1")
EU_TO_US = ("region:eu-west-1", "replicator-us-east-1")


def _up(net: Net, *links: tuple[str, str]) -> list[bool]:
    return [reachable(net.address(*link)) for link in links]


def test_every_proxy_forwards_to_its_destination(net: Net) -> None:
    for proxy in net.plan.proxies:
        assert echo_round_trip(proxy.listen, b"hello") == b"hello", proxy.name


def test_isolate_az_cuts_in_and_out_but_not_inside_and_heal_restores(net: Net) -> None:
    applied = apply_fault(net.context, IsolateAz("us-east-1b"))
    assert applied.id is not None
    assert _up(net, A_TO_B, B_TO_A, C_TO_A, A_TO_C) == [False, False, True, True]
    assert "disabled az:us-east-1a->node:use1-b1" in applied.message
    assert [f.id for f in active_faults(net.context)] == [applied.id]
    print(heal(net.context))
    assert _up(net, A_TO_B, B_TO_A) == [True, True]
    assert active_json(net.data_dir)["faults"] == []


def test_isolate_direction_in_leaves_outgoing_links(net: Net) -> None:
    apply_fault(net.context, IsolateAz("us-east-1b", direction="in"))
    assert _up(net, A_TO_B, B_TO_A) == [False, True]


def test_blackhole_swallows_bytes_on_open_connections_then_heals(net: Net) -> None:
    address = net.address(*A_TO_B)
    assert reachable(address)
    applied = apply_fault(net.context, IsolateAz("us-east-1b", mode="blackhole"))
    # The proxy still accepts (a partition is silence, not a refusal), but nothing comes back.
    with pytest.raises(OSError):  # socket.timeout is an OSError
        echo_round_trip(address, timeout_s=0.5)
    undo_fault(net.context, applied.id or "")
    assert wait_for(lambda: reachable(address))


def test_isolate_region_cuts_only_the_cross_region_links(net: Net) -> None:
    apply_fault(net.context, IsolateRegion("eu-west-1"))
    assert _up(net, US_TO_EU, EU_TO_US, A_TO_B) == [False, False, True]
    heal(net.context)
    assert _up(net, US_TO_EU, EU_TO_US) == [True, True]


def test_partition_cuts_between_groups_only(net: Net) -> None:
    apply_fault(net.context, Partition((("us-east-1a", "us-east-1b"), ("us-east-1c",))))
    assert _up(net, A_TO_B, B_TO_A, A_TO_C, C_TO_A, A_TO_A) == [True, True, False, False, True]


def test_latency_adds_delay_to_calls_from_source_to_target(net: Net) -> None:
    def round_trip_s(link: tuple[str, str]) -> float:
        start = time.monotonic()
        assert echo_round_trip(net.address(*link)) == b"ping"
        return time.monotonic() - start

    def latencies(link: tuple[str, str]) -> list[int]:
        proxy = net.proxy_state()[net.plan.proxy(*link).name]  # type: ignore[union-attr]
        return [t["attributes"]["latency"] for t in proxy["toxics"]]

    applied = apply_fault(net.context, Latency("us-east-1a", "us-east-1b", ms=300, jitter_ms=0))
    assert round_trip_s(A_TO_B) >= 0.3
    assert (latencies(A_TO_B), latencies(B_TO_A)) == ([300], [])  # calls from b: not slowed
    undo_fault(net.context, applied.id or "")
    assert latencies(A_TO_B) == []
    apply_fault(net.context, Latency("us-east-1a", "us-east-1b", ms=300, both_ways=True))
    assert round_trip_s(B_TO_A) >= 0.3 and round_trip_s(A_TO_B) >= 0.3


def test_overlapping_faults_compose_undoing_one_keeps_the_other(net: Net) -> None:
    isolate = apply_fault(net.context, IsolateAz("us-east-1b"))
    partition = apply_fault(net.context, Partition((("us-east-1a",), ("us-east-1b",))))
    undo_fault(net.context, isolate.id or "")
    assert _up(net, A_TO_B, C_TO_A) == [False, True]  # the partition still cuts a <-> b
    undo_fault(net.context, partition.id or "")
    assert _up(net, A_TO_B) == [True]


def test_bandwidth_sets_a_rate_on_both_streams(net: Net) -> None:
    apply_fault(net.context, Bandwidth("us-east-1a", "us-east-1b", kbps=80))
    toxics = net.proxy_state()["az:us-east-1a->node:use1-b1"]["toxics"]
    assert sorted((t["stream"], t["attributes"]["rate"]) for t in toxics) == \
        [("downstream", 10), ("upstream", 10)]
    payload = b"x" * 8000  # 8 KB at 10 KB/s: takes most of a second each way
    start = time.monotonic()
    assert echo_round_trip(net.address(*A_TO_B), payload) == payload
    assert time.monotonic() - start >= 0.5


def test_flap_toggles_the_links_and_leaves_them_up(net: Net) -> None:
    seen: list[tuple[str, bool]] = []

    def observe(line: str) -> None:
        seen.append((line, reachable(net.address(*A_TO_B), timeout_s=0.3)))

    result = apply_fault(net.context, Flap("us-east-1a", "us-east-1b", period_ms=400, count=2),
                         progress=observe)
    assert result.id is None  # nothing stays active
    assert [up for _, up in seen] == [False, True, False, True]
    assert _up(net, A_TO_B) == [True]
    assert active_json(net.data_dir)["faults"] == []


def test_flap_stops_early_when_asked(net: Net) -> None:
    stop = threading.Event()
    stop.set()
    result = apply_fault(net.context, Flap("us-east-1a", "us-east-1b", period_ms=60000, count=5),
                         stop=stop)
    assert "stopped early" in result.message
    assert _up(net, A_TO_B) == [True]


def test_heal_recreates_lost_proxies_and_the_standing_latencies(
        tmp_path: Path, echoes: dict[str, EchoServer], toxiproxy_server: ServerThread) -> None:
    net = make_net(tmp_path / "data", echoes, toxiproxy_server, inter_az_ms=5,
                   inter_region_ms=50)
    state = net.proxy_state()
    latencies = {name: [t["attributes"]["latency"] for t in p["toxics"]]
                 for name, p in state.items()}
    assert latencies["az:us-east-1a->node:use1-b1"] == [5]
    assert latencies["region:us-east-1->replicator:replicator-eu-west-1"] == [50]
    assert latencies["az:us-east-1a->node:use1-a1"] == []
    api = net.context.api
    assert api is not None
    apply_fault(net.context, Latency("us-east-1a", "us-east-1b", ms=100))
    api.reset()  # as after a server restart: faults' toxics and the baseline gone
    for name in list(api.proxies())[:3]:
        status, _ = http(api.url, "DELETE", f"/proxies/{urllib.parse.quote(name, safe='')}")
        assert status == 204
    assert "created 3 missing proxies" in heal(net.context)
    again = net.proxy_state()
    assert {n: [t["attributes"]["latency"] for t in p["toxics"]] for n, p in again.items()} \
        == latencies  # the fault's toxic is gone, the baseline is back
    assert all(p["enabled"] for p in again.values())


def test_network_faults_need_chaos_and_valid_places(net: Net) -> None:
    with pytest.raises(FaultError, match="not an AZ or region"):
        apply_fault(net.context, IsolateAz("us-east-1z"))
    with pytest.raises(FaultError, match="is a region"):
        apply_fault(net.context, IsolateAz("us-east-1"))
    with pytest.raises(FaultError, match="unknown argument"):
        fault_from_args("latency", {"from": "a", "to": "b", "ms": 5, "colour": "red"})
    with pytest.raises(FaultError, match="ms must be"):
        fault_from_args("latency", {"from": "us-east-1a", "to": "us-east-1b", "ms": 0})
    net.context.plan = None
    with pytest.raises(FaultError, match="links.json is missing"):
        apply_fault(net.context, IsolateAz("us-east-1b"))
    assert read_active_faults(net.data_dir) == []


def test_api_errors_are_reported_not_hung() -> None:
    api = ToxiproxyApi("http://127.0.0.1:9", timeout_s=0.5)  # discard port: nothing listens
    with pytest.raises(ToxiproxyError, match="cannot reach"):
        api.proxies()
    with ServerThread(port=0) as url:
        with pytest.raises(ToxiproxyError, match="NotFound"):
            ToxiproxyApi(url).set_enabled("no-such-proxy", False)
