"""Faults a network proxy cannot express, done on processes (DESIGN.md, "Chaos").

kill, pause, resume and restart reuse deploy.lifecycle (so they get its checks: a pid reused by
another program is never signalled). deploy is imported lazily, per call: chaos/ depends on
dynalab/ only, and these are the only faults that need the supervisor.

A process may be named by id, or as `az:NAME` for every storage node of an AZ (an AZ outage;
routers are left alone so that clients keep an endpoint).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from dynalab.files import atomic_write_text
from dynalab.links import clock_offset_path
from dynalab.topology import TOXIPROXY_ID, Topology

from chaos.faults.base import Fault, FaultContext, FaultError, ProcessFault, register

__all__ = ["Kill", "Pause", "Restart", "Resume", "Skew", "resolve_processes"]


def _lifecycle() -> ModuleType:
    from deploy import lifecycle
    return lifecycle


def resolve_processes(topology: Topology, process: str) -> tuple[str, ...]:
    """The process ids `process` names: one id, or `az:NAME` (every node of the AZ)."""
    if process.startswith("az:"):
        az = process[3:]
        nodes = tuple(n.id for n in topology.nodes if n.az == az)
        if not nodes:
            raise FaultError(f"no AZ {az!r} in this cluster")
        return nodes
    if process not in topology.endpoints():
        raise FaultError(f"no process {process!r} in this cluster (known: "
                         f"{', '.join(sorted(topology.endpoints()))})")
    return (process,)


def _each(context: FaultContext, process: str, action: str) -> str:
    """Run lifecycle.<action> on every named process; the messages, one per line."""
    lifecycle = _lifecycle()
    lines = [getattr(lifecycle, action)(context.data_dir, pid)
             for pid in resolve_processes(context.topology, process)]
    return "\n".join(lines)


@dataclass(frozen=True)
class _OnProcess(ProcessFault):
    process: str

    def validate(self, topology: Topology) -> None:
        resolve_processes(topology, self.process)


@register
@dataclass(frozen=True)
class Kill(_OnProcess):
    """kill -9; undone (heal) by restarting the process."""

    kind = "kill"

    def start(self, context: FaultContext) -> str:
        return _each(context, self.process, "kill")

    def stop(self, context: FaultContext) -> str:
        return _restart_dead(context, self.process)

    def describe(self) -> str:
        return f"kill -9 {self.process}"


@register
@dataclass(frozen=True)
class Pause(_OnProcess):
    """SIGSTOP: frozen with its sockets open (peers see silence, not a closed connection)."""

    kind = "pause"

    def start(self, context: FaultContext) -> str:
        return _each(context, self.process, "pause")

    def stop(self, context: FaultContext) -> str:
        return _resume_paused(context, self.process)

    def describe(self) -> str:
        return f"pause {self.process} (SIGSTOP)"


@register
@dataclass(frozen=True)
class Resume(_OnProcess):
    kind = "resume"
    lasting = False

    def start(self, context: FaultContext) -> str:
        return _each(context, self.process, "resume")

    def supersedes(self, other: Fault) -> bool:
        return isinstance(other, Pause) and _overlaps(self.process, other.process)

    def describe(self) -> str:
        return f"resume {self.process} (SIGCONT)"


@register
@dataclass(frozen=True)
class Restart(_OnProcess):
    kind = "restart"
    lasting = False

    def start(self, context: FaultContext) -> str:
        return _each(context, self.process, "restart")

    def supersedes(self, other: Fault) -> bool:
        return isinstance(other, Kill | Pause) and _overlaps(self.process, other.process)

    def restarts_toxiproxy(self) -> bool:
        return self.process == TOXIPROXY_ID

    def describe(self) -> str:
        return f"restart {self.process}"


def _overlaps(a: str, b: str) -> bool:
    # Names are compared as written; `az:X` and an id inside X are treated as overlapping only
    # when equal, which keeps bookkeeping simple and heal (which undoes everything) exact.
    return a == b


def _state(context: FaultContext, pid: str) -> str:
    from deploy.supervisor import Supervisor
    states = {s.name: s.state for s in Supervisor(context.data_dir).status()}
    return states.get(pid, "dead")


def _restart_dead(context: FaultContext, process: str) -> str:
    lifecycle = _lifecycle()
    lines = []
    for pid in resolve_processes(context.topology, process):
        if _state(context, pid) == "dead":
            lines.append(lifecycle.restart(context.data_dir, pid))
        else:
            lines.append(f"{pid} is running already")
    return "\n".join(lines)


def _resume_paused(context: FaultContext, process: str) -> str:
    lifecycle = _lifecycle()
    lines = []
    for pid in resolve_processes(context.topology, process):
        if _state(context, pid) == "paused":
            lines.append(lifecycle.resume(context.data_dir, pid))
    return "\n".join(lines)


@register
@dataclass(frozen=True)
class Skew(ProcessFault):
    """The node's wall clock reads `offset_ms` off (docs/cluster.md: the node re-reads
    DATA_DIR/faults/clock/NODE.json about once a second). Monotonic time is not skewed."""

    kind = "skew"
    node: str
    offset_ms: int

    def __post_init__(self) -> None:
        if isinstance(self.offset_ms, bool) or not isinstance(self.offset_ms, int):
            raise ValueError(f"offset_ms must be a whole number, not {self.offset_ms!r}")

    def validate(self, topology: Topology) -> None:
        if self.node not in {n.id for n in topology.nodes}:
            raise FaultError(f"no node {self.node!r} in this cluster")

    def start(self, context: FaultContext) -> str:
        path = clock_offset_path(context.data_dir, self.node)
        atomic_write_text(path, json.dumps({"offset_ms": self.offset_ms}) + "\n")  # never half
        return f"{self.node}'s clock now reads {self.offset_ms:+d} ms off ({path})"

    def stop(self, context: FaultContext) -> str:
        clock_offset_path(context.data_dir, self.node).unlink(missing_ok=True)
        return f"{self.node}'s clock skew cleared"

    def describe(self) -> str:
        return f"skew {self.node} by {self.offset_ms:+d} ms"


def clear_all_skews(data_dir: Path) -> list[str]:
    """Remove every clock file (heal: also those no active record names)."""
    folder = clock_offset_path(data_dir, "x").parent
    cleared = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        path.unlink(missing_ok=True)
        cleared.append(path.stem)
    return cleared
