"""A real dynalab cluster for end-to-end tests: `dynalab up --detach` in a temp data dir, torn
down with `dynalab down`, and, should that fail, by killing the process groups recorded in
state.json (only those: the processes this fixture started)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import boto3
from botocore.config import Config

from dynalab.topology import Topology, topology_from_dict

T = TypeVar("T")

ONE_REGION = """\
vnodes: {vnodes}
regions:
  us-east-1:
    azs:
      us-east-1a: {{nodes: [use1-a1]}}
      us-east-1b: {{nodes: [use1-b1]}}
      us-east-1c: {{nodes: [use1-c1]}}
    routers:
      - {{id: use1-router, az: us-east-1a}}
"""


def dynalab(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynalab.cli", *args], capture_output=True,
                          text=True, timeout=timeout_s)


@dataclass
class Cluster:
    data_dir: Path

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "cluster.json").read_text())

    @property
    def topology(self) -> Topology:
        """The resolved topology every process of the cluster reads (ports filled in)."""
        return topology_from_dict(json.loads((self.data_dir / "topology.json").read_text()))

    def endpoint(self, region: str = "us-east-1") -> str:
        return str(self.info["regions"][region]["endpoint_url"])

    def client(self, region: str = "us-east-1", service: str = "dynamodb") -> Any:
        return boto3.client(service, endpoint_url=self.endpoint(region), region_name=region,
                            aws_access_key_id="x", aws_secret_access_key="x",
                            config=Config(retries={"max_attempts": 8, "mode": "standard"},
                                          connect_timeout=5, read_timeout=20))

    def run(self, *args: str) -> str:
        done = dynalab(*args, "--data-dir", str(self.data_dir))
        assert done.returncode == 0, f"dynalab {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    def pid(self, name: str) -> int:
        state = json.loads((self.data_dir / "state.json").read_text())
        return int(state["processes"][name]["pid"])

    def log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_cluster(data_dir: Path, topology_yaml: str) -> Cluster:
    config = data_dir.parent / f"{data_dir.name}-topology.yaml"
    config.write_text(topology_yaml)
    done = dynalab("up", "--detach", "--data-dir", str(data_dir), "--config", str(config),
                   timeout_s=180)
    cluster = Cluster(data_dir)
    if done.returncode != 0:
        stop_cluster(cluster)
        raise RuntimeError(f"dynalab up failed:\n{done.stdout}\n{done.stderr}")
    return cluster


@contextlib.contextmanager
def running_cluster(data_dir: Path, topology_yaml: str) -> Iterator[Cluster]:
    """A started cluster for the block's duration; stopped (and checked for leftovers) after."""
    started = start_cluster(data_dir, topology_yaml)
    try:
        yield started
    finally:
        stop_cluster(started)


def stop_cluster(cluster: Cluster) -> None:
    dynalab("down", "--data-dir", str(cluster.data_dir), timeout_s=120)
    _kill_leftovers(cluster.data_dir)


def _kill_leftovers(data_dir: Path) -> None:
    """Belt and braces after `down`: SIGKILL any process group state.json names that is still
    alive. Only groups this cluster's supervisor created are touched."""
    path = data_dir / "state.json"
    if not path.exists():
        return
    for record in json.loads(path.read_text())["processes"].values():
        if _still_ours(int(record["pid"]), int(record["pgid"]), record["argv"]):
            os.killpg(int(record["pgid"]), signal.SIGKILL)


def _still_ours(pid: int, pgid: int, argv: list[str]) -> bool:
    # A pid can be reused once its process is gone: act only on the same command line.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        return os.getpgid(pid) == pgid and [c.decode() for c in cmdline] == list(argv)
    except (OSError, ValueError):
        return False


def wait_for(check: Callable[[], T | None], what: str, timeout_s: float = 30.0,
             interval_s: float = 0.1) -> T:
    """Poll `check` until it returns something other than None/False, within a deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - reported if the deadline passes
            last_error = error
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


def wait_active(client: Any, table: str, timeout_s: float = 30.0) -> dict[str, Any]:
    def active() -> dict[str, Any] | None:
        table_desc = client.describe_table(TableName=table)["Table"]
        return table_desc if table_desc["TableStatus"] == "ACTIVE" else None
    return wait_for(active, f"table {table} ACTIVE", timeout_s)
