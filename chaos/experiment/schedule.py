"""The fault timeline of an experiment: each scheduled fault (repeats expanded) applied at its
time and undone after its duration, each in a thread of its own so that a slow action (a restart
waits for health) never delays another fault's timing.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dynalab.topology import Topology

from chaos.faults import (FAULTS, Fault, FaultContext, Flap, apply_fault, fault_from_args,
                          undo_fault)
from chaos.experiment.spec import ExperimentError, ScheduledFault

__all__ = ["FaultEvent", "Timeline", "TimedFault", "expand"]

_JOIN_S = 120.0  # a thread ends within this after stop: the longest action is a restart


@dataclass(frozen=True)
class TimedFault:
    at_s: float
    until_s: float | None  # None: until the end of the run
    fault: Fault


@dataclass
class FaultEvent:
    """What happened to one timed fault (times in run seconds)."""

    kind: str
    description: str
    planned_at_s: float
    applied_s: float | None = None
    undone_s: float | None = None
    message: str = ""
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cycle_values(value: Any, topology: Topology) -> list[Any]:
    if isinstance(value, str) and value.startswith("nodes:"):
        region = topology.region(value[len("nodes:"):])
        return sorted(n.id for n in region.nodes)
    if isinstance(value, list | tuple) and value:
        return list(value)
    raise ExperimentError(f"a cycle value is a non-empty list or nodes:REGION, not {value!r}")


def expand(scheduled: tuple[ScheduledFault, ...], topology: Topology, duration_s: float,
           registry: Mapping[str, type[Fault]] = FAULTS) -> list[TimedFault]:
    """Every fault occurrence of the schedule, in time order, built and checked against the
    topology (an unknown AZ fails here, before the run starts)."""
    timed = []
    for entry in scheduled:
        cycles = {name: _cycle_values(v, topology) for name, v in entry.cycle.items()}
        for index in range(entry.count):
            at_s = entry.at_s + index * (entry.every_s or 0)
            if at_s >= duration_s:
                break
            args = {**entry.args, **{n: vs[index % len(vs)] for n, vs in cycles.items()}}
            fault = fault_from_args(entry.fault, args, registry)
            fault.validate(topology)
            until = None if entry.duration_s is None else min(at_s + entry.duration_s, duration_s)
            timed.append(TimedFault(at_s, until, fault))
    return sorted(timed, key=lambda t: t.at_s)


@dataclass
class Timeline:
    """Runs timed faults against `context` on the run's clock (`now()`: run seconds)."""

    context: FaultContext
    faults: list[TimedFault]
    now: Callable[[], float]
    log: Callable[[str], None] = print
    events: list[FaultEvent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for timed in self.faults:
            event = FaultEvent(timed.fault.kind, timed.fault.describe(), timed.at_s)
            self.events.append(event)
            thread = threading.Thread(target=self._run, args=(timed, event), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Cancel what has not started, undo what is active, wait for every thread."""
        self._stop.set()
        for thread in self._threads:
            thread.join(_JOIN_S)

    def _wait_until(self, at_s: float) -> bool:
        """False if stopped first."""
        return not self._stop.wait(max(0.0, at_s - self.now()))

    def _run(self, timed: TimedFault, event: FaultEvent) -> None:
        if not self._wait_until(timed.at_s):
            return
        event.applied_s = self.now()
        try:
            applied = apply_fault(self.context, timed.fault, stop=self._stop,
                                  progress=lambda line: None)
        except Exception as error:  # reported in the report; the run goes on
            event.error = f"apply: {error}"
            self.log(f"[{event.applied_s:6.1f}s] FAILED {event.description}: {error}")
            return
        event.message = applied.message
        self.log(f"[{event.applied_s:6.1f}s] {event.description}")
        if isinstance(timed.fault, Flap) or applied.id is None:
            event.undone_s = self.now()  # ran to its end inside apply (flap) or one-shot
            return
        if timed.until_s is None:
            self._stop.wait()  # until the end of the run: stop() sets it
        else:
            self._wait_until(timed.until_s)
        try:
            undo_fault(self.context, applied.id)
        except Exception as error:
            event.error = f"undo: {error}"
        event.undone_s = self.now()
        self.log(f"[{event.undone_s:6.1f}s] undone: {event.description}")
