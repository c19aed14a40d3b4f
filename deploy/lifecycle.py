"""The cluster-lifecycle operations behind `dynalab up/down/status/kill/pause/resume/restart/wipe`.

Each function takes the data dir and returns what the command prints (or raises a
`LifecycleError` / `SupervisorError` / `TopologyError` whose message is what it should print).
What each process runs is not decided here: `up` takes a `build_specs(topology, data_dir)`
callback, so this module does not depend on the node and router programs.

The data dir holds, besides the processes' own data:
  .dynalab-data-dir  marks it as ours: `wipe` deletes nothing else
  topology.yaml      the topology of the cluster, so a plain `up` brings the same cluster back
  ports.json         the automatic ports chosen at the first `up`, reused by later ones
  state.json         pids etc. of the running processes (deploy/supervisor.py)
  cluster.json       endpoints for clients and tools (DESIGN.md, "Contracts")
  logs/NAME.log      each process's output
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from dynalab.topology import TOXIPROXY_ID, Topology

from dynalab.files import atomic_write_text
from deploy.ports import resolve_ports
from deploy.supervisor import (
    ProcessRecord, ProcessSpec, ProcessStatus, Supervisor, stop_on_signals,
)
from deploy.topology_yaml import DEFAULT_TOPOLOGY, load_topology

__all__ = [
    "CLUSTER_FILE", "LifecycleError", "SpecBuilder", "cluster_info", "down", "kill", "pause",
    "prepare", "restart", "resume", "status", "up", "wipe", "write_cluster_json",
]

CLUSTER_FILE = "cluster.json"
TOPOLOGY_FILE = "topology.yaml"
MARKER_FILE = ".dynalab-data-dir"

SpecBuilder = Callable[[Topology, Path], Sequence[ProcessSpec]]


class LifecycleError(RuntimeError):
    """A lifecycle command cannot do what was asked; the message says why."""


# -- up ------------------------------------------------------------------------------------------

def prepare(data_dir: Path, config: Path | None = None) -> Topology:
    """The topology an `up` should run, with every port resolved, and the data dir made ready.

    `config` given: that file (kept in the data dir for later `up`s). Not given: the data dir's
    kept topology if it has one (the same cluster comes back), else the default topology."""
    data_dir = Path(data_dir)
    _claim(data_dir)
    running = Supervisor(data_dir).running()
    if running:
        # Checked first: the kept ports are busy because of this very cluster, and "port in
        # use by another program" would mislead.
        raise LifecycleError(f"a cluster is already running from {data_dir} "
                             f"({', '.join(running)}); stop it first (dynalab down)")
    kept = data_dir / TOPOLOGY_FILE
    if config is not None:
        topology = load_topology(config)
        atomic_write_text(kept, Path(config).read_text(encoding="utf-8"), durable=True)
    elif kept.exists():
        topology = load_topology(kept)
    else:
        topology = load_topology(DEFAULT_TOPOLOGY)
        atomic_write_text(kept, DEFAULT_TOPOLOGY.read_text(encoding="utf-8"), durable=True)
    return resolve_ports(topology, data_dir)


def up(data_dir: Path, topology: Topology, build_specs: SpecBuilder, *, detach: bool,
       deadline_s: float = 60.0, stop: threading.Event | None = None,
       on_ready: Callable[[dict[str, Any]], None] | None = None,
       on_exit: Callable[[ProcessStatus], None] | None = None) -> dict[str, Any]:
    """Start the cluster (`topology` with resolved ports, from `prepare`), wait until every process
    is healthy and write cluster.json. Detached: return at once (the processes live on in their
    own sessions). Foreground: call `on_ready(cluster info)`, then stay until Ctrl-C / SIGTERM /
    `stop` is set, then stop everything. Returns the cluster info written to cluster.json."""
    data_dir = Path(data_dir)
    _claim(data_dir)
    if any(endpoint.port == 0 for endpoint in topology.endpoints().values()):
        raise LifecycleError("up needs every port resolved: pass the topology from prepare()")
    supervisor = Supervisor(data_dir)
    specs = build_specs(topology, data_dir)
    if detach:
        records = supervisor.start(specs, deadline_s)
        info = write_cluster_json(data_dir, topology, {rec.name: rec for rec in records})
        if on_ready:
            on_ready(info)
        return info
    # Foreground: Ctrl-C / SIGTERM from the very start stops the cluster in order, even while
    # it is still starting (the supervisor then undoes the partial start).
    stop = stop or threading.Event()
    with stop_on_signals(stop):
        records = supervisor.start(specs, deadline_s, stop)
        info = write_cluster_json(data_dir, topology, {rec.name: rec for rec in records})
        if on_ready:
            on_ready(info)
        supervisor.serve(stop, on_exit=on_exit)
    _refresh_cluster_json(data_dir)
    return info


def _claim(data_dir: Path) -> None:
    """Create the data dir (or adopt an empty one) and mark it as dynalab's."""
    marker = data_dir / MARKER_FILE
    if data_dir.exists() and not marker.exists() and any(data_dir.iterdir()):
        raise LifecycleError(f"{data_dir} exists, is not empty and is not a dynalab data dir; "
                             f"choose another --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text("This directory is a dynalab data dir; `dynalab wipe` may delete it.\n")


# -- cluster.json --------------------------------------------------------------------------------

def _connect_host(host: str) -> str:
    # A process bound to every address is reached on loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def _address(host: str, port: int) -> str:
    host = _connect_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def cluster_info(data_dir: Path, topology: Topology,
                 records: Mapping[str, ProcessRecord]) -> dict[str, Any]:
    """The cluster.json document (DESIGN.md contract): per region the DynamoDB endpoint URL,
    routers, nodes (id, region, az, pid, addresses), replicator and Toxiproxy API URL. A pid is
    null for a process that is not running."""
    def pid(name: str) -> int | None:
        return records[name].pid if name in records else None

    chaos = topology.chaos
    toxiproxy_url = (f"http://{_address(chaos.toxiproxy_host, chaos.toxiproxy_api_port)}"
                     if chaos.enabled else None)
    regions: dict[str, Any] = {}
    for region in topology.regions:
        routers = [{"id": r.id, "region": r.region, "az": r.az, "pid": pid(r.id),
                    "address": _address(r.host, r.http_port),
                    "endpoint_url": f"http://{_address(r.host, r.http_port)}"}
                   for r in region.routers]
        nodes = [{"id": n.id, "region": n.region, "az": n.az, "pid": pid(n.id),
                  "addresses": {"grpc": _address(n.host, n.grpc_port)}} for n in region.nodes]
        regions[region.name] = {
            "endpoint_url": routers[0]["endpoint_url"],
            "routers": routers,
            "nodes": nodes,
            "replicator": {"id": region.replicator_id, "pid": pid(region.replicator_id),
                           "address": _address(region.replicator_host, region.replicator_port)},
            "toxiproxy_api_url": toxiproxy_url,
        }
    return {"version": 1, "data_dir": str(Path(data_dir).resolve()),
            "toxiproxy": {"pid": pid(TOXIPROXY_ID), "api_url": toxiproxy_url},
            "regions": regions}


def write_cluster_json(data_dir: Path, topology: Topology,
                       records: Mapping[str, ProcessRecord]) -> dict[str, Any]:
    info = cluster_info(data_dir, topology, records)
    atomic_write_text(Path(data_dir) / CLUSTER_FILE, json.dumps(info, indent=2) + "\n",
                      durable=True)
    return info


def _refresh_cluster_json(data_dir: Path) -> None:
    """Bring the pids in cluster.json up to date with state.json (after restart, down...)."""
    path = Path(data_dir) / CLUSTER_FILE
    if not path.exists():
        return
    info = json.loads(path.read_text(encoding="utf-8"))
    live = {s.name: s.pid for s in Supervisor(data_dir).status() if s.state != "dead"}
    for region in info["regions"].values():
        for entry in (*region["routers"], *region["nodes"], region["replicator"]):
            entry["pid"] = live.get(entry["id"])
    info["toxiproxy"]["pid"] = live.get(TOXIPROXY_ID)
    atomic_write_text(path, json.dumps(info, indent=2) + "\n", durable=True)


# -- the other commands --------------------------------------------------------------------------

def down(data_dir: Path) -> str:
    """Stop every process; keep the data."""
    supervisor = Supervisor(Path(data_dir))
    running = supervisor.running()
    supervisor.stop_all()
    _refresh_cluster_json(data_dir)
    if not running:
        return f"nothing was running from {data_dir}"
    return f"stopped {len(running)} process(es); data kept in {data_dir}"


def status(data_dir: Path, as_json: bool = False) -> str:
    statuses = Supervisor(Path(data_dir)).status()
    now = time.time()
    if as_json:
        return json.dumps({
            "data_dir": str(Path(data_dir).resolve()),
            "running": any(s.state != "dead" for s in statuses),
            "processes": [{**asdict(s), "uptime_s": round(now - s.started_at, 1)
                           if s.state != "dead" else None} for s in statuses],
        }, indent=2)
    if not statuses:
        return f"no cluster has been started from {data_dir}"
    rows = [("NAME", "KIND", "STATE", "PID", "PORTS", "UPTIME")]
    for s in statuses:
        ports = " ".join(f"{k}={v}" for k, v in s.ports.items()) or "-"
        uptime = _duration(now - s.started_at) if s.state != "dead" else "-"
        rows.append((s.name, s.kind, s.state, str(s.pid), ports, uptime))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def kill(data_dir: Path, name: str) -> str:
    Supervisor(Path(data_dir)).kill(name)
    return f"killed {name} (SIGKILL)"


def pause(data_dir: Path, name: str) -> str:
    Supervisor(Path(data_dir)).pause(name)
    return f"paused {name} (SIGSTOP)"


def resume(data_dir: Path, name: str) -> str:
    Supervisor(Path(data_dir)).resume(name)
    return f"resumed {name} (SIGCONT)"


def restart(data_dir: Path, name: str, deadline_s: float = 60.0) -> str:
    record = Supervisor(Path(data_dir)).restart(name, deadline_s)
    _refresh_cluster_json(data_dir)
    return f"restarted {name} (pid {record.pid})"


def wipe(data_dir: Path) -> str:
    """Delete the data dir. Only a stopped cluster's, and only a dir marked as dynalab's."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        return f"{data_dir} does not exist; nothing to wipe"
    if not (data_dir / MARKER_FILE).exists():
        raise LifecycleError(f"{data_dir} is not a dynalab data dir (no {MARKER_FILE}); "
                             f"refusing to delete it")
    running = Supervisor(data_dir).running()
    if running:
        raise LifecycleError(f"the cluster in {data_dir} is running ({', '.join(running)}); "
                             f"run `dynalab down` first")
    shutil.rmtree(data_dir)
    return f"wiped {data_dir}"
