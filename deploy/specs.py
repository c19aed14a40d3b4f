"""What each process of a cluster runs: the topology turned into supervisor process specs.

Node and router processes read the resolved topology from DATA_DIR/topology.json (the plain-dict
form from dynalab.topology), so they never import deploy/ (see docs/cluster.md).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from dynalab.topology import Topology, topology_to_dict

from deploy.chaos_setup import chaos_specs
from dynalab.files import atomic_write_text
from deploy.supervisor import ProcessSpec, TcpCheck

__all__ = ["TOPOLOGY_JSON", "build_specs", "write_topology_json"]

TOPOLOGY_JSON = "topology.json"


def write_topology_json(topology: Topology, data_dir: Path) -> Path:
    path = Path(data_dir) / TOPOLOGY_JSON
    atomic_write_text(path, json.dumps(topology_to_dict(topology), indent=2) + "\n", durable=True)
    return path


def build_specs(topology: Topology, data_dir: Path) -> list[ProcessSpec]:
    """The Toxiproxy server first when chaos is on (with the link plan written before any process
    reads it), then nodes, then routers, then one replicator per region: the supervisor starts
    them in this order, and routers and replicators fetch the catalog from the nodes."""
    write_topology_json(topology, data_dir)
    python = sys.executable
    common = ("--data-dir", str(Path(data_dir).resolve()))
    specs = chaos_specs(topology, data_dir)
    specs += [ProcessSpec(node.id, "node", (python, "-m", "node", *common, "--id", node.id),
                          health=TcpCheck(node.grpc_port, node.host),
                          ports={"grpc": node.grpc_port})
              for node in topology.nodes]
    specs += [ProcessSpec(router.id, "router", (python, "-m", "router", *common, "--id", router.id),
                          health=TcpCheck(router.http_port, router.host),
                          ports={"http": router.http_port})
              for router in topology.routers]
    specs += [ProcessSpec(region.replicator_id, "replicator",
                          (python, "-m", "replication.replicator", *common,
                           "--region", region.name),
                          health=TcpCheck(region.replicator_port, region.replicator_host),
                          ports={"grpc": region.replicator_port})
              for region in topology.regions]
    return specs
