"""Automatic ports: a free port per name, chosen deterministically once and then kept.

A process whose topology port is 0 gets a port at its first `up`; the choice is written to
DATA_DIR/ports.json and reused by every later `up` on that data dir, so endpoints (cluster.json,
clients' configs, peers' addresses) stay the same across restarts.

Deterministic: names are served in sorted order, each taking the first free port scanning up from
a base derived from the data dir's path, so the same data dir on the same machine gets the same
ports, and two data dirs (two clusters, parallel tests) start their scans far apart. The range
stays below Linux's ephemeral range (32768+), where outgoing connections take their local ports
and could grab a port between our choice and the server's bind.
"""
from __future__ import annotations

import errno
import hashlib
import json
import socket
from pathlib import Path
from typing import Collection, Mapping, Sequence

from dynalab.topology import DEFAULT_HOST, Topology

from deploy.files import file_lock
from dynalab.files import atomic_write_text

__all__ = ["PORT_RANGE", "PortInUseError", "assign_ports", "port_is_free", "resolve_ports"]

PORT_RANGE = range(20000, 32768)
PORTS_FILE = "ports.json"


class PortInUseError(RuntimeError):
    """A port kept for a process since an earlier `up` is taken by something else now."""


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    """Whether a server could bind `port` now. SO_REUSEADDR as servers set it, so a port whose
    last connections linger in TIME_WAIT after a restart counts as free (it is, for a server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _scan_start(data_dir: Path) -> int:
    digest = hashlib.blake2b(str(data_dir.resolve()).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % len(PORT_RANGE)


def _load(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(name): int(port) for name, port in data.items()}


def assign_ports(data_dir: Path, names: Sequence[str], hosts: Mapping[str, str] | None = None,
                 reserved: Collection[int] = ()) -> dict[str, int]:
    """A port for each name: the one kept in DATA_DIR/ports.json, or else a newly chosen free one
    (then kept). `hosts` says where each name will bind (default 127.0.0.1); `reserved` ports are
    never chosen (e.g. the fixed ports of the topology). Raises PortInUseError if a kept port is
    busy: moving it silently would change an address others may have stored."""
    hosts = hosts or {}
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PORTS_FILE
    with file_lock(data_dir / "ports.lock"):
        kept = _load(path)
        for name in sorted(set(names) & kept.keys()):
            if not port_is_free(kept[name], hosts.get(name, DEFAULT_HOST)):
                raise PortInUseError(
                    f"port {kept[name]} of {name} (kept in {path} since the first `up`) is in use "
                    f"by another program; stop it, or delete the entry to pick a new port")
        taken = set(reserved) | set(kept.values())
        offset = _scan_start(data_dir)
        for name in sorted(set(names) - kept.keys()):
            kept[name] = _first_free(offset, taken, hosts.get(name, DEFAULT_HOST))
            taken.add(kept[name])
        atomic_write_text(path, json.dumps(kept, indent=2, sort_keys=True) + "\n", durable=True)
    return {name: kept[name] for name in names}


def _first_free(offset: int, taken: set[int], host: str) -> int:
    for step in range(len(PORT_RANGE)):  # one lap of the range at most
        port = PORT_RANGE[(offset + step) % len(PORT_RANGE)]
        if port not in taken and port_is_free(port, host):
            return port
    raise PortInUseError(f"no free port in {PORT_RANGE.start}..{PORT_RANGE.stop - 1} on {host}")


def resolve_ports(topology: Topology, data_dir: Path) -> Topology:
    """The topology with every automatic (0) port replaced by its kept or newly chosen port."""
    endpoints = topology.endpoints()
    automatic = [pid for pid, endpoint in endpoints.items() if endpoint.port == 0]
    fixed = {endpoint.port for endpoint in endpoints.values() if endpoint.port}
    hosts = {pid: endpoint.host for pid, endpoint in endpoints.items()}
    return topology.with_ports(assign_ports(data_dir, automatic, hosts, reserved=fixed))

