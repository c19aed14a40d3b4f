"""Helpers for the deploy tests: tiny real child processes and a cleanup net.

The children are the smallest programs that behave like cluster processes: a TCP listener on a
given 127.0.0.1 port. Each ends itself after a while (a bounded loop), so even a failed cleanup
cannot leave one behind for long; the fixture's cleanup kills every group it knows of anyway.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from deploy.ports import assign_ports
from deploy.supervisor import ProcessRecord, ProcessSpec, Supervisor, TcpCheck

# argv[1] = port; optional argv[2] = "ignore-term" to make SIGTERM do nothing.
LISTENER = """
import signal, socket, sys, time
if sys.argv[2:] == ["ignore-term"]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
s.settimeout(0.5)
print("listening on", sys.argv[1], flush=True)
end = time.monotonic() + 120
while time.monotonic() < end:
    try:
        s.accept()[0].close()
    except socket.timeout:
        pass
"""

NEVER_HEALTHY = "import time; print('boom: cannot open the store', flush=True); time.sleep(120)"


def python(code: str, *args: str) -> tuple[str, ...]:
    # -S: no site import, so each child starts in a few ms.
    return (sys.executable, "-S", "-c", code, *args)


def listener_spec(name: str, port: int, kind: str = "node", *extra: str) -> ProcessSpec:
    return ProcessSpec(name=name, kind=kind, argv=python(LISTENER, str(port), *extra),  # type: ignore[arg-type]
                       health=TcpCheck(port), ports={"grpc": port})


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, T, Z...), None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return data[data.rindex(")") + 2:].split()[0]


def gone(pid: int) -> bool:
    return proc_state(pid) in (None, "Z", "X")


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose processes are all killed at the end of the test, whatever happened."""
    path = tmp_path / "data"
    path.mkdir()
    try:
        yield path
    finally:
        state = path / "state.json"
        if state.exists():
            for data in json.loads(state.read_text())["processes"].values():
                rec = ProcessRecord.from_json(data)
                if rec.pgid not in (0, 1, os.getpgrp()) and Supervisor.state_of(rec) != "dead":
                    try:
                        os.killpg(rec.pgid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


@pytest.fixture
def ports(data_dir: Path) -> Callable[..., dict[str, int]]:
    return lambda *names: assign_ports(data_dir, list(names))
