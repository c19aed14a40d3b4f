"""The link plan: which process-to-process connections go through which Toxiproxy proxy.

DESIGN.md, "Chaos": one proxy per (source AZ or region, destination process). Inside a region a
connection from a router or node in AZ `a` to node `n` goes through proxy `az:a->node:n`;
between regions a replicator connects to another region's replicator through
`region:R->replicator:replicator-S`. So "cut AZ b off" is a set of proxies turned off, and
"100 ms between two regions" is a latency toxic on the cross-region proxies.

Planned links (each served by exactly one proxy):
  router -> node              every node of the router's region
  node -> node                every other node of the same region (Raft; replicas of a group are
                              in distinct AZs, but a proxy per pair costs little and keeps the
                              rule simple)
  replicator -> replicator    every other region's
Any other pair (a process to itself, a replicator to its own region's nodes...) is not proxied:
`connect_address` gives the destination's own address for it.

Also here, because node/ and router/ may only import dynalab/: the other chaos seams that
processes read (clock skew, docs/cluster.md) and the path of the active-faults record.

Pure apart from reading/writing the small JSON files named below.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from dynalab.files import atomic_write_text
from dynalab.topology import ChaosSpec, Endpoint, Topology

__all__ = [
    "ACTIVE_FAULTS_FILE", "BASELINE_PREFIX", "ClockSkew", "Link", "LinkPlan", "LinkPlanError",
    "LinkProxy", "PLAN_FILE", "baseline_toxics", "clock_offset_path", "connect_address",
    "load_plan", "plan_links", "planned_links", "proxy_name", "proxy_names", "read_active_faults",
    "read_clock_offset_ms", "save_plan",
]

PLAN_FILE = "links.json"
ACTIVE_FAULTS_FILE = "faults/active.json"
CLOCK_DIR = "faults/clock"
PLAN_FORMAT = "dynalab-links/1"
# Toxics that make the standing latencies of ChaosSpec carry this prefix; fault toxics carry the
# fault's id, so `heal` can tell the baseline from faults.
BASELINE_PREFIX = "baseline"


class LinkPlanError(ValueError):
    """A planned link has no proxy in the plan (the plan is stale for this topology)."""


@dataclass(frozen=True)
class Link:
    """One process connecting to another (ids from the topology)."""

    source: str
    dest: str


@dataclass(frozen=True)
class LinkProxy:
    """One Toxiproxy proxy: connections from `source_scope` `source_name` (an AZ or a region) to
    process `dest`. Where source and destination are is kept here so that faults can select
    proxies from the plan alone."""

    name: str
    listen: str  # host:port the proxy listens on (what sources connect to)
    upstream: str  # host:port of the destination process itself
    source_scope: str  # "az" or "region"
    source_name: str  # the AZ or region name
    source_region: str
    dest: str  # process id
    dest_kind: str  # "node" or "replicator"
    dest_region: str
    dest_az: str | None  # None for a replicator (it belongs to no AZ)

    @property
    def source_group(self) -> str:
        return f"{self.source_scope}:{self.source_name}"

    def source_in(self, place: str) -> bool:
        """Whether the connections come from `place` (an AZ or region name)."""
        return place in (self.source_name, self.source_region)

    def dest_in(self, place: str) -> bool:
        """Whether the destination is `place`, or in it (a process id, AZ or region name)."""
        return place in (self.dest, self.dest_az, self.dest_region)

    @property
    def cross_az(self) -> bool:
        return self.source_scope == "az" and self.dest_az != self.source_name

    @property
    def cross_region(self) -> bool:
        return self.source_region != self.dest_region


@dataclass(frozen=True)
class LinkPlan:
    proxies: tuple[LinkProxy, ...]

    @cached_property
    def _by_key(self) -> dict[tuple[str, str], LinkProxy]:
        return {(p.source_group, p.dest): p for p in self.proxies}

    @cached_property
    def _by_name(self) -> dict[str, LinkProxy]:
        return {p.name: p for p in self.proxies}

    def proxy(self, source_group: str, dest: str) -> LinkProxy | None:
        return self._by_key.get((source_group, dest))

    def named(self, name: str) -> LinkProxy:
        return self._by_name[name]

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "proxies": [asdict(p) for p in self.proxies]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LinkPlan:
        if raw.get("format") != PLAN_FORMAT:
            raise ValueError(f"not a link plan of format {PLAN_FORMAT}: {raw.get('format')!r}")
        return cls(tuple(LinkProxy(**p) for p in raw["proxies"]))


# -- which links exist ---------------------------------------------------------------------------

def planned_links(topology: Topology) -> tuple[Link, ...]:
    """Every process-to-process connection the plan proxies, in topology order."""
    links: list[Link] = []
    for region in topology.regions:
        for router in region.routers:
            links += [Link(router.id, node.id) for node in region.nodes]
        for source in region.nodes:
            links += [Link(source.id, dest.id) for dest in region.nodes if dest.id != source.id]
        links += [Link(region.replicator_id, other.replicator_id)
                  for other in topology.regions if other.name != region.name]
    return tuple(links)


@dataclass(frozen=True)
class _Place:
    kind: str
    region: str
    az: str | None


def _places(topology: Topology) -> dict[str, _Place]:
    places = {n.id: _Place("node", n.region, n.az) for n in topology.nodes}
    places.update({r.id: _Place("router", r.region, r.az) for r in topology.routers})
    places.update({r.replicator_id: _Place("replicator", r.name, None) for r in topology.regions})
    return places


def _source_group(source: _Place, dest: _Place) -> tuple[str, str] | None:
    """(scope, name) of the proxy group a planned link belongs to; None if it is not planned."""
    if source.kind == "replicator" and dest.kind == "replicator" and source.region != dest.region:
        return "region", source.region
    if source.kind in ("router", "node") and dest.kind == "node" and source.region == dest.region:
        assert source.az is not None
        return "az", source.az
    return None


def proxy_name(scope: str, source_name: str, dest_kind: str, dest: str) -> str:
    return f"{scope}:{source_name}->{dest_kind}:{dest}"


def _proxy_keys(topology: Topology) -> dict[str, tuple[str, str, str]]:
    """Proxy name -> (scope, source name, dest id), in first-use order."""
    places = _places(topology)
    keys: dict[str, tuple[str, str, str]] = {}
    for link in planned_links(topology):
        group = _source_group(places[link.source], places[link.dest])
        assert group is not None, link  # planned_links only yields planned pairs
        name = proxy_name(*group, places[link.dest].kind, link.dest)
        keys.setdefault(name, (*group, link.dest))
    return keys


def proxy_names(topology: Topology) -> tuple[str, ...]:
    """The names of every proxy the plan needs (deploy allocates a listen port for each)."""
    return tuple(_proxy_keys(topology))


def _connect_host(host: str) -> str:
    # A process bound to every address is reached on loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def _address(host: str, port: int) -> str:
    host = _connect_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def plan_links(topology: Topology, ports: Mapping[str, int]) -> LinkPlan:
    """The plan for a resolved topology; `ports` maps each of `proxy_names(topology)` to the port
    its proxy listens on (on the topology's Toxiproxy host)."""
    places = _places(topology)
    endpoints = topology.endpoints()
    proxies = []
    for name, (scope, source_name, dest) in _proxy_keys(topology).items():
        if name not in ports or not ports[name]:
            raise LinkPlanError(f"no listen port for proxy {name}")
        place = places[dest]
        source_region = (source_name if scope == "region"
                         else next(r.name for r in topology.regions
                                   if any(az.name == source_name for az in r.azs)))
        target: Endpoint = endpoints[dest]
        proxies.append(LinkProxy(
            name=name, listen=_address(topology.chaos.toxiproxy_host, ports[name]),
            upstream=_address(target.host, target.port), source_scope=scope,
            source_name=source_name, source_region=source_region, dest=dest,
            dest_kind=place.kind, dest_region=place.region, dest_az=place.az))
    return LinkPlan(tuple(proxies))


def connect_address(topology: Topology, plan: LinkPlan | None, source_id: str,
                    dest_id: str) -> str:
    """"host:port" where process `source_id` should connect to reach `dest_id`: the proxy of
    (source's AZ or region, dest) when there is a plan and the link is planned, else dest's own
    address. Raises LinkPlanError if the link is planned but the plan has no proxy for it."""
    endpoint = topology.endpoints()[dest_id]
    direct = _address(endpoint.host, endpoint.port)
    if plan is None:
        return direct
    places = _places(topology)
    group = _source_group(places[source_id], places[dest_id])
    if group is None:
        return direct
    proxy = plan.proxy(f"{group[0]}:{group[1]}", dest_id)
    if proxy is None:
        raise LinkPlanError(f"the link plan has no proxy for {source_id} -> {dest_id} "
                            f"({group[0]} {group[1]}); it is stale: run `dynalab up` again")
    return proxy.listen


def baseline_toxics(plan: LinkPlan, chaos: ChaosSpec) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(proxy name, toxic) for the standing latencies of `chaos`: every call between two AZs
    takes inter_az_latency_ms longer, every call between two regions inter_region_latency_ms
    (one latency toxic on the response stream of each such proxy)."""
    toxics = []
    for proxy in plan.proxies:
        ms = (chaos.inter_region_latency_ms if proxy.cross_region
              else chaos.inter_az_latency_ms if proxy.cross_az else 0)
        if ms:
            toxics.append((proxy.name, {
                "name": f"{BASELINE_PREFIX}-latency", "type": "latency", "stream": "downstream",
                "toxicity": 1.0, "attributes": {"latency": ms, "jitter": 0}}))
    return tuple(toxics)


# -- files ---------------------------------------------------------------------------------------

def save_plan(data_dir: Path, plan: LinkPlan | None) -> None:
    """Write DATA_DIR/links.json; None removes it (chaos off: processes connect directly)."""
    path = Path(data_dir) / PLAN_FILE
    if plan is None:
        path.unlink(missing_ok=True)
        return
    atomic_write_text(path, json.dumps(plan.to_dict(), indent=2) + "\n")


def load_plan(data_dir: Path) -> LinkPlan | None:
    """The plan deploy wrote, or None when chaos is off (no DATA_DIR/links.json)."""
    path = Path(data_dir) / PLAN_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return LinkPlan.from_dict(raw)


def read_active_faults(data_dir: Path) -> list[dict[str, Any]]:
    """The faults `dynalab chaos` has applied and not undone (for `dynalab status`)."""
    try:
        raw = json.loads((Path(data_dir) / ACTIVE_FAULTS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return []
    return list(raw.get("faults", []))


# -- clock skew ----------------------------------------------------------------------------------

def clock_offset_path(data_dir: Path, node_id: str) -> Path:
    return Path(data_dir) / CLOCK_DIR / f"{node_id}.json"


def read_clock_offset_ms(data_dir: Path, node_id: str) -> int:
    """The wall-clock offset `dynalab chaos skew` set for a node (0 when none or unreadable:
    a half-written or foreign file must not crash the node)."""
    try:
        raw = json.loads(clock_offset_path(data_dir, node_id).read_text(encoding="utf-8"))
        return int(raw["offset_ms"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class ClockSkew:
    """A node's skewed wall clock: `now_ms()` is time.time() plus the offset in its skew file,
    re-read at most every `reread_s` seconds (docs/cluster.md)."""

    def __init__(self, data_dir: Path, node_id: str, reread_s: float = 1.0) -> None:
        self._data_dir = Path(data_dir)
        self._node_id = node_id
        self._reread_s = reread_s
        self._offset_ms = 0
        self._read_at = -float("inf")

    def offset_ms(self) -> int:
        now = time.monotonic()
        if now - self._read_at >= self._reread_s:
            self._offset_ms = read_clock_offset_ms(self._data_dir, self._node_id)
            self._read_at = now
        return self._offset_ms

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms()

    def now_s(self) -> float:
        return time.time() + self.offset_ms() / 1000

