"""An experiment file: a workload, a steady state, a timed list of faults and a duration.

    name: az-isolation
    description: cut one AZ off the network for 20 s; nothing acknowledged may be lost
    duration_s: 90                 # the workload runs this long, then faults are healed
    requires: []                   # e.g. [global_tables]: skipped until the cluster has them
    workload:
      table: dynalab-chaos
      keys: 16                     # registers k0..k15
      mix: {read: 0.5, write: 0.4, cas: 0.1}
      rate_ops_s: 100              # over all clients
      clients: 8
      consistency: strong          # strong | eventual (the reads' ConsistentRead)
      regions: [us-east-1]         # or "all"
      key_ownership: home          # home: each key used from one region; shared: from all
      timeout_s: 2.0               # per request; a write that times out is "unknown"
      seed: 7
    steady_state:
      max_error_rate: 0.01         # before the first fault, and in the recovered window
      window_s: 3                  # recovered: this long at or under the error rate
      recovery_timeout_s: 60       # after the heal
      unavailable_after_s: 1.0     # a gap this long without a successful op is unavailability
    faults:
      - at_s: 15
        fault: isolate-az          # any `dynalab chaos` fault kind (chaos.faults.FAULTS)
        args: {az: us-east-1b}
        duration_s: 20             # omitted: until the end of the run
        repeat: {every_s: 30, count: 2}           # optional
        cycle: {az: [us-east-1b, us-east-1c]}     # optional: repetition i takes item i
    short:                         # `--short`: overrides for a quick run (tests)
      duration_s: 20
      faults: [...]                # replaces the list
      workload: {rate_ops_s: 50}   # merged into workload (and steady_state likewise)

A cycle value may be `nodes:REGION` (the region's node ids, sorted) instead of a list.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["Experiment", "ExperimentError", "ScheduledFault", "SteadyState", "WorkloadSpec",
           "load_experiment", "parse_experiment"]

OPERATIONS = ("read", "write", "cas")


class ExperimentError(ValueError):
    """The experiment file is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class WorkloadSpec:
    table: str = "dynalab-chaos"
    keys: int = 16
    mix: tuple[tuple[str, float], ...] = (("read", 0.5), ("write", 0.5))
    rate_ops_s: float = 100.0
    clients: int = 8
    consistency: str = "strong"
    regions: tuple[str, ...] | str = "all"
    key_ownership: str = "home"
    timeout_s: float = 2.0
    seed: int = 1

    def __post_init__(self) -> None:
        if self.keys < 1 or self.clients < 1 or self.rate_ops_s <= 0 or self.timeout_s <= 0:
            raise ValueError("keys, clients, rate_ops_s and timeout_s must be positive")
        names = [name for name, _ in self.mix]
        if not names or any(n not in OPERATIONS for n in names) or len(set(names)) != len(names):
            raise ValueError(f"mix takes each of {', '.join(OPERATIONS)} at most once")
        if any(share < 0 for _, share in self.mix) or sum(s for _, s in self.mix) <= 0:
            raise ValueError("mix shares must be >= 0 with a positive sum")
        if self.consistency not in ("strong", "eventual"):
            raise ValueError(f"consistency must be strong or eventual, not {self.consistency!r}")
        if self.key_ownership not in ("home", "shared"):
            raise ValueError(f"key_ownership must be home or shared, not {self.key_ownership!r}")

    @property
    def strong(self) -> bool:
        return self.consistency == "strong"


@dataclass(frozen=True)
class SteadyState:
    max_error_rate: float = 0.01
    window_s: float = 3.0
    recovery_timeout_s: float = 60.0
    unavailable_after_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError("max_error_rate must be in [0, 1]")
        if self.window_s <= 0 or self.recovery_timeout_s < 0 or self.unavailable_after_s <= 0:
            raise ValueError("window_s and unavailable_after_s must be positive, "
                             "recovery_timeout_s >= 0")


@dataclass(frozen=True)
class ScheduledFault:
    at_s: float
    fault: str  # a fault kind
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    duration_s: float | None = None  # None: until the end of the run
    every_s: float | None = None  # repeat
    count: int = 1
    cycle: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.at_s < 0 or (self.duration_s is not None and self.duration_s <= 0):
            raise ValueError("at_s must be >= 0 and duration_s > 0")
        if self.count < 1 or (self.count > 1 and not self.every_s):
            raise ValueError("repeat needs every_s > 0 and count >= 1")


@dataclass(frozen=True)
class Experiment:
    name: str
    duration_s: float
    workload: WorkloadSpec
    steady_state: SteadyState
    faults: tuple[ScheduledFault, ...]
    description: str = ""
    requires: tuple[str, ...] = ()
    short: bool = False  # this is the --short form

    @property
    def first_fault_s(self) -> float | None:
        return min((f.at_s for f in self.faults), default=None)


def load_experiment(path: str | Path, *, short: bool = False) -> Experiment:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ExperimentError(f"{path}: {error}") from None
    try:
        return parse_experiment(raw, short=short)
    except ExperimentError as error:
        raise ExperimentError(f"{path}: {error}") from None


def parse_experiment(raw: Any, *, short: bool = False) -> Experiment:
    if not isinstance(raw, dict):
        raise ExperimentError("an experiment is a mapping (name, duration_s, workload, ...)")
    raw = dict(raw)
    overrides = raw.pop("short", None) or {}
    if short:
        raw = _merge(raw, overrides)
    _only(raw, {"name", "description", "duration_s", "requires", "workload", "steady_state",
                "faults"}, "experiment")
    try:
        duration_s = float(raw.get("duration_s", 60))
        faults = tuple(_fault(entry, i) for i, entry in enumerate(raw.get("faults") or []))
        experiment = Experiment(
            name=str(raw.get("name") or "experiment"), duration_s=duration_s,
            workload=_workload(raw.get("workload") or {}),
            steady_state=_build(SteadyState, raw.get("steady_state") or {}, "steady_state"),
            faults=faults, description=str(raw.get("description", "")).strip(),
            requires=tuple(raw.get("requires") or ()), short=short)
    except (TypeError, ValueError) as error:
        raise ExperimentError(str(error)) from None
    for index, fault in enumerate(experiment.faults):
        if fault.at_s >= experiment.duration_s:
            raise ExperimentError(f"faults[{index}] starts at {fault.at_s} s, not before the end "
                                  f"of the run ({experiment.duration_s} s)")
    return experiment


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if key in ("workload", "steady_state") and isinstance(value, Mapping):
            merged[key] = {**(base.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def _only(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ExperimentError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(allowed))}")


def _build(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ExperimentError(f"{where} must be a mapping")
    _only(raw, {f.name for f in dataclasses.fields(cls)}, where)
    try:
        return cls(**raw)
    except (TypeError, ValueError) as error:
        raise ExperimentError(f"{where}: {error}") from None


def _workload(raw: Mapping[str, Any]) -> WorkloadSpec:
    values = dict(raw)
    if "mix" in values:
        mix = values["mix"]
        if not isinstance(mix, Mapping):
            raise ExperimentError("workload.mix must map read/write/cas to shares")
        values["mix"] = tuple((str(k), float(v)) for k, v in mix.items())
    if isinstance(values.get("regions"), list):
        values["regions"] = tuple(values["regions"])
    workload: WorkloadSpec = _build(WorkloadSpec, values, "workload")
    return workload


def _fault(raw: Any, index: int) -> ScheduledFault:
    where = f"faults[{index}]"
    if not isinstance(raw, Mapping) or "fault" not in raw or "at_s" not in raw:
        raise ExperimentError(f"{where} needs at least `at_s` and `fault`")
    _only(raw, {"at_s", "fault", "args", "duration_s", "repeat", "cycle"}, where)
    repeat = raw.get("repeat") or {}
    if not isinstance(repeat, Mapping):
        raise ExperimentError(f"{where}.repeat must be a mapping of every_s and count")
    _only(repeat, {"every_s", "count"}, f"{where}.repeat")
    try:
        return ScheduledFault(
            at_s=float(raw["at_s"]), fault=str(raw["fault"]), args=dict(raw.get("args") or {}),
            duration_s=None if raw.get("duration_s") is None else float(raw["duration_s"]),
            every_s=None if repeat.get("every_s") is None else float(repeat["every_s"]),
            count=int(repeat.get("count", 1)), cycle=dict(raw.get("cycle") or {}))
    except (TypeError, ValueError) as error:
        raise ExperimentError(f"{where}: {error}") from None
