"""What each process of a cluster runs: the topology turned into supervisor process specs.

Node and router processes read the resolved topology from DATA_DIR/topology.json (the plain-dict
form from dynalab.topology), so they never import deploy/ (see docs/cluster.md).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from dynalab.topology import Topology, topology_to_dict

from deploy.chaos_setup import chaos_specs
from dynalab.files import atomic_write_text
from deploy.supervisor import ProcessSpec, TcpCheck

__all__ = ["TOPOLOGY_JSON", "GRPC_EXPERIMENTS", "build_specs", "grpc_env",
           "write_topology_json"]

TOPOLOGY_JSON = "topology.json"

# gRPC's EventEngine serves sockets on threads of its own, which hand each event to grpc.aio's
# poller thread, which wakes the event loop: with its client and listener turned off, the poller
# thread polls the sockets itself, one thread hop less per message. On two cores shared by five
# busy processes that is 6-22% of the cluster's CPU per request (docs/performance.md, change 20).
# Read once, when a process imports grpc; a GRPC_EXPERIMENTS of the user's own is kept.
GRPC_EXPERIMENTS = "-event_engine_client,-event_engine_listener"


def grpc_env() -> dict[str, str]:
    """What to add to the environment of a process that serves or calls gRPC."""
    return {} if "GRPC_EXPERIMENTS" in os.environ else {"GRPC_EXPERIMENTS": GRPC_EXPERIMENTS}


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
    env = grpc_env()
    specs = chaos_specs(topology, data_dir)
    specs += [ProcessSpec(node.id, "node", (python, "-m", "node", *common, "--id", node.id),
                          health=TcpCheck(node.grpc_port, node.host),
                          env=env, ports={"grpc": node.grpc_port})
              for node in topology.nodes]
    specs += [ProcessSpec(router.id, "router", (python, "-m", "router", *common, "--id", router.id),
                          health=TcpCheck(router.http_port, router.host),
                          env=env, ports={"http": router.http_port})
              for router in topology.routers]
    specs += [ProcessSpec(region.replicator_id, "replicator",
                          (python, "-m", "replication.replicator", *common,
                           "--region", region.name),
                          health=TcpCheck(region.replicator_port, region.replicator_host),
                          env=env, ports={"grpc": region.replicator_port})
              for region in topology.regions]
    return specs
