"""Automatic ports: chosen once, deterministically, free, and kept across `up`s."""
from __future__ import annotations

import json
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from deploy.ports import PORT_RANGE, PortInUseError, assign_ports, port_is_free, resolve_ports
from deploy.topology_yaml import default_topology


@contextmanager
def listening(port: int) -> Iterator[socket.socket]:
    """Another program's server on `port` (REUSEADDR like any server: the port may have
    connections of earlier tests lingering in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock


def test_ports_are_free_distinct_in_range_and_kept(tmp_path: Path) -> None:
    first = assign_ports(tmp_path, ["b", "a", "c"])
    assert list(first) == ["b", "a", "c"]  # answered in the order asked
    assert len(set(first.values())) == 3 and all(p in PORT_RANGE for p in first.values())
    assert json.loads((tmp_path / "ports.json").read_text()) == first
    # Kept: asking again (also with more names) gives the same ports to the same names.
    again = assign_ports(tmp_path, ["a", "b", "c", "d"])
    assert {k: again[k] for k in first} == first and again["d"] not in first.values()


def test_the_choice_is_deterministic_for_a_data_dir(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    chosen = assign_ports(one, ["n1", "n2"])
    (one / "ports.json").unlink()  # forget: the same scan finds the same free ports again
    assert assign_ports(one, ["n2", "n1"]) == {"n2": chosen["n2"], "n1": chosen["n1"]}
    assert assign_ports(two, ["n1"])["n1"] != chosen["n1"]  # another dir scans elsewhere


def test_reserved_and_busy_ports_are_skipped(tmp_path: Path) -> None:
    probe = assign_ports(tmp_path / "probe", ["x"])["x"]  # where this dir's scan starts
    with listening(probe):
        assert not port_is_free(probe)
        (tmp_path / "probe" / "ports.json").unlink()
        got = assign_ports(tmp_path / "probe", ["x"], reserved={probe + 1})
    assert got["x"] not in (probe, probe + 1)


def test_a_kept_port_taken_by_another_program_is_an_error(tmp_path: Path) -> None:
    port = assign_ports(tmp_path, ["n1"])["n1"]
    with listening(port):
        with pytest.raises(PortInUseError, match=f"port {port} of n1"):
            assign_ports(tmp_path, ["n1"])


def test_resolve_ports_fills_every_automatic_port_and_keeps_fixed_ones(tmp_path: Path) -> None:
    topology = default_topology().with_ports({"use1-a1": 7001})
    resolved = resolve_ports(topology, tmp_path)
    endpoints = resolved.endpoints()
    assert endpoints["use1-a1"].port == 7001
    assert all(e.port for e in endpoints.values())
    assert len({e.port for e in endpoints.values()}) == len(endpoints)
    assert resolve_ports(topology, tmp_path) == resolved  # a restart gets the same ports
    assert "use1-a1" not in json.loads((tmp_path / "ports.json").read_text())
