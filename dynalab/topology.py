"""The topology model: which regions, AZs, nodes and routers a cluster has, and on which ports.

A `Topology` is the single description of a cluster (DESIGN.md, "Deploy"). It is a tree of frozen
values that validate themselves on construction, so a `Topology` object that exists is one that
placement and deploy can trust: every region has enough AZs for its replication factor, every
process id is unique, every fixed port is unique and in range.

Process ids double as file names (logs) and as the names the CLI takes (`dynalab kill ID`), so
they are restricted to a safe character set. Port 0 means "pick a free port at `up` time"
(deploy/ports.py does that and keeps the choice so restarts reuse it).

Errors are `TopologyError`; each names the offending entry as (kind, name) so a file loader can
point at the line where that entry was written.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Iterator, Mapping

__all__ = [
    "AZ", "ChaosSpec", "DEFAULT_HOST", "Endpoint", "NodeSpec", "Region", "RouterSpec",
    "TOXIPROXY_ID", "Topology", "TopologyError", "topology_from_dict", "topology_to_dict",
]

DEFAULT_HOST = "127.0.0.1"  # an unauthenticated database must not appear on the network by default
TOXIPROXY_ID = "toxiproxy"  # the process id of the (single, cluster-wide) Toxiproxy server
MAX_PORT = 65535
MAX_VNODES = 1024

# Ids become log file names and CLI arguments: no slashes, spaces or leading dots.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class TopologyError(ValueError):
    """The topology is invalid. `entry` is (kind, name) of the offending entry when there is one,
    kind being one of "topology", "chaos", "region", "az", "node", "router"."""

    def __init__(self, message: str, entry: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.entry = entry


def _check_id(value: str, kind: str, pattern: re.Pattern[str] = _ID_RE) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise TopologyError(
            f"{kind} name {value!r} is not valid: use letters, digits, '.', '_' or '-' "
            f"(at most 64 characters, starting with a letter or digit)", (kind, str(value)))


def _check_port(port: int, what: str, entry: tuple[str, str]) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= MAX_PORT:
        raise TopologyError(f"{what} {port!r} is not a port: use 1..{MAX_PORT}, or 0 to pick one "
                            f"automatically", entry)


def _check_host(host: str, entry: tuple[str, str]) -> None:
    if not isinstance(host, str) or not host or any(c.isspace() for c in host):
        raise TopologyError(f"host {host!r} is not a host name or address", entry)


@dataclass(frozen=True)
class Endpoint:
    """Where one process listens."""

    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NodeSpec:
    """A storage node. `grpc_port` 0 = assigned automatically at `up`."""

    id: str
    region: str
    az: str
    host: str = DEFAULT_HOST
    grpc_port: int = 0

    def __post_init__(self) -> None:
        _check_id(self.id, "node")
        _check_host(self.host, ("node", self.id))
        _check_port(self.grpc_port, f"node {self.id}: grpc_port", ("node", self.id))


@dataclass(frozen=True)
class RouterSpec:
    """A request router (the DynamoDB HTTP endpoint). It lives in an AZ so that eventually
    consistent reads can prefer a same-AZ replica."""

    id: str
    region: str
    az: str
    host: str = DEFAULT_HOST
    http_port: int = 0

    def __post_init__(self) -> None:
        _check_id(self.id, "router")
        _check_host(self.host, ("router", self.id))
        _check_port(self.http_port, f"router {self.id}: http_port", ("router", self.id))


@dataclass(frozen=True)
class AZ:
    name: str
    nodes: tuple[NodeSpec, ...]

    def __post_init__(self) -> None:
        _check_id(self.name, "az")
        if not self.nodes:
            # A replica set takes one node of each AZ; an AZ with no node cannot hold its share.
            raise TopologyError(f"AZ {self.name} has no nodes: every AZ needs at least one",
                                ("az", self.name))


@dataclass(frozen=True)
class Region:
    """One region: an independent ring of nodes over its AZs, its routers and one replicator
    (global tables)."""

    name: str
    azs: tuple[AZ, ...]
    routers: tuple[RouterSpec, ...]
    replicator_port: int = 0
    replicator_host: str = DEFAULT_HOST

    def __post_init__(self) -> None:
        _check_id(self.name, "region", _REGION_RE)
        entry = ("region", self.name)
        _check_host(self.replicator_host, entry)
        _check_port(self.replicator_port, f"region {self.name}: replicator_port", entry)
        if not self.routers:
            raise TopologyError(f"region {self.name} has no routers: it needs at least one "
                                f"(the DynamoDB endpoint)", entry)
        for az in self.azs:
            for node in az.nodes:
                if (node.region, node.az) != (self.name, az.name):
                    raise TopologyError(f"node {node.id} is listed under {self.name}/{az.name} "
                                        f"but says {node.region}/{node.az}", ("node", node.id))
        az_names = {az.name for az in self.azs}
        for router in self.routers:
            if router.region != self.name:
                raise TopologyError(f"router {router.id} is listed under region {self.name} "
                                    f"but says {router.region}", ("router", router.id))
            if router.az not in az_names:
                raise TopologyError(f"router {router.id} names AZ {router.az!r}, which region "
                                    f"{self.name} does not have (it has {sorted(az_names)})",
                                    ("router", router.id))

    @property
    def replicator_id(self) -> str:
        return f"replicator-{self.name}"

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        return tuple(node for az in self.azs for node in az.nodes)


@dataclass(frozen=True)
class ChaosSpec:
    """Whether links go through Toxiproxy, where its API listens, and the standing latencies it
    adds between AZs and between regions (0 = none)."""

    enabled: bool = False
    toxiproxy_api_port: int = 0
    toxiproxy_host: str = DEFAULT_HOST
    inter_az_latency_ms: int = 0
    inter_region_latency_ms: int = 0

    def __post_init__(self) -> None:
        entry = ("chaos", "chaos")
        _check_host(self.toxiproxy_host, entry)
        _check_port(self.toxiproxy_api_port, "chaos: toxiproxy_api_port", entry)
        for name in ("inter_az_latency_ms", "inter_region_latency_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TopologyError(f"chaos: {name} {value!r} must be a whole number >= 0", entry)
            if value and not self.enabled:
                # Latency is a toxic on a proxy; with chaos off there is no proxy to put it on,
                # and silently ignoring the setting would make a demo lie.
                raise TopologyError(f"chaos: {name} is {value} but chaos is not enabled; "
                                    f"latency needs the Toxiproxy proxies (enabled: true)", entry)


@dataclass(frozen=True)
class Topology:
    regions: tuple[Region, ...]
    vnodes: int = 8
    replication_factor: int = 3
    chaos: ChaosSpec = field(default_factory=ChaosSpec)

    def __post_init__(self) -> None:
        entry = ("topology", "")
        if isinstance(self.vnodes, bool) or not isinstance(self.vnodes, int) \
                or not 1 <= self.vnodes <= MAX_VNODES:
            raise TopologyError(f"vnodes {self.vnodes!r} must be in 1..{MAX_VNODES}", entry)
        if isinstance(self.replication_factor, bool) \
                or not isinstance(self.replication_factor, int) or self.replication_factor < 1:
            raise TopologyError(f"replication_factor {self.replication_factor!r} must be >= 1",
                                entry)
        if not self.regions:
            raise TopologyError("the topology has no regions", entry)
        self._check_region_shape()
        self._check_unique_names()
        self._check_unique_ports()

    def _check_region_shape(self) -> None:
        for region in self.regions:
            if len(region.azs) < self.replication_factor:
                # Each replica of a partition goes to a different AZ.
                raise TopologyError(
                    f"region {region.name} has {len(region.azs)} AZ(s); replication factor "
                    f"{self.replication_factor} needs at least {self.replication_factor} AZs "
                    f"with at least one node each", ("region", region.name))

    def _check_unique_names(self) -> None:
        seen_regions: set[str] = set()
        seen_azs: set[str] = set()
        seen_ids: dict[str, str] = {}
        for region in self.regions:
            if region.name in seen_regions:
                raise TopologyError(f"region {region.name} appears twice", ("region", region.name))
            seen_regions.add(region.name)
            for az in region.azs:
                if az.name in seen_azs:
                    raise TopologyError(f"AZ {az.name} appears twice", ("az", az.name))
                seen_azs.add(az.name)
        for kind, pid, _, entry in self._processes():
            if pid == TOXIPROXY_ID and kind != "toxiproxy":
                raise TopologyError(f"{kind} id {pid} is reserved for the Toxiproxy server", entry)
            if pid in seen_ids:
                raise TopologyError(f"{kind} id {pid} is already used by {seen_ids[pid]}", entry)
            seen_ids[pid] = f"{kind} {pid}"

    def _check_unique_ports(self) -> None:
        owner: dict[int, str] = {}
        for kind, pid, endpoint, entry in self._processes():
            if endpoint.port == 0:
                continue
            if endpoint.port in owner:
                raise TopologyError(f"{kind} {pid}: port {endpoint.port} is already used by "
                                    f"{owner[endpoint.port]}", entry)
            owner[endpoint.port] = f"{kind} {pid}"

    def _processes(self) -> Iterator[tuple[str, str, Endpoint, tuple[str, str]]]:
        """(kind, process id, endpoint, error entry) of every process, in file order. The
        replicator and Toxiproxy are written inside their region / chaos entries."""
        for region in self.regions:
            for node in region.nodes:
                yield "node", node.id, Endpoint(node.host, node.grpc_port), ("node", node.id)
            for router in region.routers:
                yield ("router", router.id, Endpoint(router.host, router.http_port),
                       ("router", router.id))
            yield ("replicator", region.replicator_id,
                   Endpoint(region.replicator_host, region.replicator_port),
                   ("region", region.name))
        if self.chaos.enabled:
            yield ("toxiproxy", TOXIPROXY_ID,
                   Endpoint(self.chaos.toxiproxy_host, self.chaos.toxiproxy_api_port),
                   ("chaos", "chaos"))

    # -- lookups ---------------------------------------------------------------------------------

    @cached_property
    def nodes(self) -> tuple[NodeSpec, ...]:
        return tuple(node for region in self.regions for node in region.nodes)

    @cached_property
    def routers(self) -> tuple[RouterSpec, ...]:
        return tuple(router for region in self.regions for router in region.routers)

    @cached_property
    def _node_by_id(self) -> dict[str, NodeSpec]:
        return {node.id: node for node in self.nodes}

    def node(self, node_id: str) -> NodeSpec:
        try:
            return self._node_by_id[node_id]
        except KeyError:
            raise TopologyError(f"no node {node_id!r} in the topology", ("node", node_id)) from None

    def az_of(self, node_id: str) -> str:
        return self.node(node_id).az

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        raise TopologyError(f"no region {name!r} in the topology", ("region", name))

    def endpoints(self) -> dict[str, Endpoint]:
        """Process id -> where it listens (port 0 = not assigned yet)."""
        return {pid: endpoint for _, pid, endpoint, _ in self._processes()}

    def kinds(self) -> dict[str, str]:
        """Process id -> kind ("node", "router", "replicator", "toxiproxy")."""
        return {pid: kind for kind, pid, _, _ in self._processes()}

    def with_ports(self, ports: Mapping[str, int]) -> Topology:
        """A copy with the ports of the named processes replaced (ids not named keep theirs)."""
        def port(pid: str, current: int) -> int:
            return ports.get(pid, current)

        regions = tuple(
            replace(region,
                    azs=tuple(replace(az, nodes=tuple(
                        replace(n, grpc_port=port(n.id, n.grpc_port)) for n in az.nodes))
                        for az in region.azs),
                    routers=tuple(replace(r, http_port=port(r.id, r.http_port))
                                  for r in region.routers),
                    replicator_port=port(region.replicator_id, region.replicator_port))
            for region in self.regions)
        chaos = replace(self.chaos, toxiproxy_api_port=port(TOXIPROXY_ID,
                                                            self.chaos.toxiproxy_api_port))
        return replace(self, regions=regions, chaos=chaos)



def topology_to_dict(topology: Topology) -> dict[str, Any]:
    """A plain-JSON form of a (resolved) topology, for processes that are handed it in a file.
    YAML with line-numbered errors is deploy/'s business; this is the machine-to-machine form."""
    return asdict(topology)


def topology_from_dict(raw: Mapping[str, Any]) -> Topology:
    """Inverse of topology_to_dict."""
    def region(r: Mapping[str, Any]) -> Region:
        azs = tuple(AZ(a["name"], tuple(NodeSpec(**n) for n in a["nodes"])) for a in r["azs"])
        routers = tuple(RouterSpec(**x) for x in r["routers"])
        return Region(r["name"], azs, routers, r["replicator_port"], r["replicator_host"])

    return Topology(tuple(region(r) for r in raw["regions"]), raw["vnodes"],
                    raw["replication_factor"], ChaosSpec(**raw["chaos"]))
