"""Topology files: YAML in, `dynalab.topology.Topology` out, with errors that name file and line.

The file is composed into PyYAML's node tree rather than loaded into plain dicts, because nodes
keep their position (`start_mark.line`): every error, whether found while reading (a typo in a
key, a port that is not a number) or by the model's own validation (a duplicate id, a router in
an AZ the region lacks), is reported as `FILE:LINE: message` pointing at the entry concerned.
Unknown keys and duplicate keys are errors: PyYAML silently keeps the last of two equal keys, and
a misspelt `grpc_prot` silently ignored would make a port "automatic" by accident.

Format (see default.yaml)::

    vnodes: 8                    # tokens per node (optional, default 8)
    replication_factor: 3        # optional, default 3
    chaos:                       # optional, default: off
      enabled: false
      toxiproxy_api_port: 0      # 0 = pick a free port at `up`, then keep it
      inter_az_latency_ms: 0
      inter_region_latency_ms: 0
    regions:
      us-east-1:
        replicator_port: 0       # optional
        azs:
          us-east-1a:
            nodes:
              - use1-a1                        # an id alone: host 127.0.0.1, automatic port
              - {id: use1-a2, grpc_port: 7001} # or a mapping: id, host, grpc_port
        routers:
          - {id: use1-router, az: us-east-1a, http_port: 8000}   # id, az, host, http_port
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dynalab.topology import (
    AZ, ChaosSpec, NodeSpec, Region, RouterSpec, Topology,
    TopologyError,
)

__all__ = ["DEFAULT_TOPOLOGY", "default_topology", "load_topology", "parse_topology", "to_yaml"]

DEFAULT_TOPOLOGY = Path(__file__).with_name("default.yaml")

T = TypeVar("T")
Entry = tuple[str, str]

_TOP_KEYS = {"vnodes", "replication_factor", "chaos", "regions"}
_CHAOS_KEYS = {"enabled", "toxiproxy_api_port", "toxiproxy_host", "inter_az_latency_ms",
               "inter_region_latency_ms"}
_REGION_KEYS = {"azs", "routers", "replicator_port", "replicator_host"}
_AZ_KEYS = {"nodes"}
_NODE_KEYS = {"id", "host", "grpc_port"}
_ROUTER_KEYS = {"id", "az", "host", "http_port"}


class _LocatedError(TopologyError):
    """Already carries FILE:LINE; passes through the outer handler unchanged."""


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TopologyError(f"{path}: cannot read topology file: {err.strerror}") from err
    return parse_topology(text, str(path))


def default_topology() -> Topology:
    """The default cluster: two regions, three AZs each, one node per AZ, one router per region."""
    return load_topology(DEFAULT_TOPOLOGY)


def parse_topology(text: str, source: str = "<string>") -> Topology:
    """Parse topology YAML; `source` names it in error messages."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise TopologyError(f"{source}:{line}: not valid YAML: {err.problem or err}") from err
    except yaml.YAMLError as err:
        raise TopologyError(f"{source}: not valid YAML: {err}") from err
    if root is None:
        raise TopologyError(f"{source}:1: the topology file is empty")
    try:
        return reader.topology(root)
    except _LocatedError:
        raise
    except TopologyError as err:
        # Raised by the model's validation: point at the entry it names.
        raise TopologyError(f"{source}:{reader.line_of(err.entry)}: {err.message}",
                            err.entry) from err


class _Reader:
    """Turns the composed node tree into model values, remembering where each entry was written."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Entry, list[int]] = {}
        self._constructor = SafeConstructor()

    # -- errors and positions --------------------------------------------------------------------

    def fail(self, node: Node, message: str) -> _LocatedError:
        return _LocatedError(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def remember(self, entry: Entry, node: Node) -> None:
        self.lines.setdefault(entry, []).append(node.start_mark.line + 1)

    def line_of(self, entry: Entry | None) -> int:
        # The last occurrence: for "appears twice" that is the duplicate, the one to fix.
        return self.lines.get(entry, [1])[-1] if entry else 1

    # -- typed access ----------------------------------------------------------------------------

    def mapping(self, node: Node, what: str, allowed: set[str],
                required: frozenset[str] = frozenset()) -> dict[str, tuple[Node, Node]]:
        """A mapping with only `allowed` keys -> {key: (key node, value node)}."""
        items = self.named_mapping(node, what)
        for key, (key_node, _) in items.items():
            if key not in allowed:
                raise self.fail(key_node, f"{what}: unknown key {key!r} "
                                          f"(expected one of: {', '.join(sorted(allowed))})")
        missing = sorted(required - items.keys())
        if missing:
            raise self.fail(node, f"{what}: missing {', '.join(map(repr, missing))}")
        return items

    def named_mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]]:
        """A mapping whose keys are names (any names, no duplicates)."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value lines)")
        items: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.name(key_node, f"{what}: key")
            if key in items:
                raise self.fail(key_node, f"{what}: {key!r} appears twice")
            items[key] = (key_node, value_node)
        return items

    def sequence(self, node: Node, what: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, f"{what} must be a list (lines starting with '- ')")
        return list(node.value)

    def value(self, node: Node, what: str, kind: type[T], check: Callable[[Any], bool]) -> T:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, f"{what} must be a single {kind.__name__} value")
        value = self._constructor.construct_object(node, deep=True)
        if not check(value):
            raise self.fail(node, f"{what} must be a {kind.__name__}, not {node.value!r}")
        return value

    def integer(self, node: Node, what: str) -> int:
        return self.value(node, what, int, lambda v: isinstance(v, int) and not isinstance(v, bool))

    def boolean(self, node: Node, what: str) -> bool:
        return self.value(node, what, bool, lambda v: isinstance(v, bool))

    def text(self, node: Node, what: str) -> str:
        return self.value(node, what, str, lambda v: isinstance(v, str))

    def name(self, node: Node, what: str) -> str:
        # An id written as a bare number (`- 1`) is a fine name; floats, nulls, bools are not.
        value = self.value(node, what, str, lambda v: isinstance(v, (str, int))
                           and not isinstance(v, bool))
        return str(value)

    # -- the tree --------------------------------------------------------------------------------

    def topology(self, root: Node) -> Topology:
        top = self.mapping(root, "topology", _TOP_KEYS, frozenset({"regions"}))
        self.remember(("topology", ""), root)
        options: dict[str, Any] = {}
        for key in ("vnodes", "replication_factor"):
            if key in top:
                options[key] = self.integer(top[key][1], key)
        if "chaos" in top:
            options["chaos"] = self.chaos(*top["chaos"])
        regions_node = top["regions"][1]
        regions = tuple(self.region(name, key_node, value_node) for name, (key_node, value_node)
                        in self.named_mapping(regions_node, "regions").items())
        return Topology(regions=regions, **options)

    def chaos(self, key_node: Node, node: Node) -> ChaosSpec:
        self.remember(("chaos", "chaos"), key_node)
        items = self.mapping(node, "chaos", _CHAOS_KEYS)
        options: dict[str, Any] = {}
        for key, (_, value_node) in items.items():
            if key == "enabled":
                options[key] = self.boolean(value_node, "chaos: enabled")
            elif key == "toxiproxy_host":
                options[key] = self.text(value_node, "chaos: toxiproxy_host")
            else:
                options[key] = self.integer(value_node, f"chaos: {key}")
        return ChaosSpec(**options)

    def region(self, name: str, key_node: Node, node: Node) -> Region:
        self.remember(("region", name), key_node)
        what = f"region {name}"
        items = self.mapping(node, what, _REGION_KEYS, frozenset({"azs", "routers"}))
        azs = tuple(self.az(name, az_name, az_key, az_value) for az_name, (az_key, az_value)
                    in self.named_mapping(items["azs"][1], f"{what}: azs").items())
        routers = tuple(self.router(name, entry) for entry
                        in self.sequence(items["routers"][1], f"{what}: routers"))
        options: dict[str, Any] = {}
        if "replicator_port" in items:
            options["replicator_port"] = self.integer(items["replicator_port"][1],
                                                      f"{what}: replicator_port")
        if "replicator_host" in items:
            options["replicator_host"] = self.text(items["replicator_host"][1],
                                                   f"{what}: replicator_host")
        return Region(name=name, azs=azs, routers=routers, **options)

    def az(self, region: str, name: str, key_node: Node, node: Node) -> AZ:
        self.remember(("az", name), key_node)
        items = self.mapping(node, f"AZ {name}", _AZ_KEYS, frozenset({"nodes"}))
        nodes = tuple(self.node(region, name, entry)
                      for entry in self.sequence(items["nodes"][1], f"AZ {name}: nodes"))
        return AZ(name=name, nodes=nodes)

    def node(self, region: str, az: str, node: Node) -> NodeSpec:
        if isinstance(node, ScalarNode):  # shorthand: just the id
            node_id = self.name(node, f"AZ {az}: node id")
            self.remember(("node", node_id), node)
            return NodeSpec(id=node_id, region=region, az=az)
        items = self.mapping(node, f"AZ {az}: node", _NODE_KEYS, frozenset({"id"}))
        node_id = self.name(items["id"][1], f"AZ {az}: node id")
        self.remember(("node", node_id), node)
        options: dict[str, Any] = {}
        if "host" in items:
            options["host"] = self.text(items["host"][1], f"node {node_id}: host")
        if "grpc_port" in items:
            options["grpc_port"] = self.integer(items["grpc_port"][1], f"node {node_id}: grpc_port")
        return NodeSpec(id=node_id, region=region, az=az, **options)

    def router(self, region: str, node: Node) -> RouterSpec:
        what = f"region {region}: router"
        items = self.mapping(node, what, _ROUTER_KEYS, frozenset({"id", "az"}))
        router_id = self.name(items["id"][1], f"{what} id")
        self.remember(("router", router_id), node)
        options: dict[str, Any] = {}
        if "host" in items:
            options["host"] = self.text(items["host"][1], f"router {router_id}: host")
        if "http_port" in items:
            options["http_port"] = self.integer(items["http_port"][1],
                                                f"router {router_id}: http_port")
        az = self.name(items["az"][1], f"router {router_id}: az")
        return RouterSpec(id=router_id, region=region, az=az, **options)


def to_yaml(topology: Topology) -> str:
    """The topology as a file `parse_topology` reads back to an equal value (used to keep the
    resolved topology of a data dir)."""
    def node(n: NodeSpec) -> dict[str, Any]:
        return {"id": n.id, "host": n.host, "grpc_port": n.grpc_port}

    def router(r: RouterSpec) -> dict[str, Any]:
        return {"id": r.id, "az": r.az, "host": r.host, "http_port": r.http_port}

    doc = {
        "vnodes": topology.vnodes,
        "replication_factor": topology.replication_factor,
        "chaos": {
            "enabled": topology.chaos.enabled,
            "toxiproxy_host": topology.chaos.toxiproxy_host,
            "toxiproxy_api_port": topology.chaos.toxiproxy_api_port,
            "inter_az_latency_ms": topology.chaos.inter_az_latency_ms,
            "inter_region_latency_ms": topology.chaos.inter_region_latency_ms,
        },
        "regions": {
            region.name: {
                "replicator_host": region.replicator_host,
                "replicator_port": region.replicator_port,
                "azs": {az.name: {"nodes": [node(n) for n in az.nodes]} for az in region.azs},
                "routers": [router(r) for r in region.routers],
            }
            for region in topology.regions
        },
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)

