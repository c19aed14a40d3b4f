"""What a fault is: a frozen settings dataclass, registered under a kind name.

Faults follow Toxiproxy's toxics: settings (what the user asked for) are separate from state
(what is active now, kept in DATA_DIR/faults/active.json by chaos.faults.engine). Two shapes:

  NetworkFault  declares its effect on the proxies of the link plan (`effects`: which proxies
                are off, which toxics they carry). It has no apply/undo code of its own: the
                engine turns the union of every active fault's effects, plus the standing
                latencies, into Toxiproxy calls. Overlapping faults therefore compose, and undoing
                one never re-enables a proxy another still cuts.
  ProcessFault  acts on processes (signals, restarts, clock files): `start` does it, `stop`
                undoes it (for faults that stay active until undone).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

from dynalab.links import LinkPlan, LinkProxy, load_plan
from dynalab.topology import Topology, TopologyError, topology_from_dict

from chaos.faults.api import ToxiproxyApi

__all__ = [
    "FAULTS", "Fault", "FaultContext", "FaultError", "NetworkEffects", "NetworkFault",
    "ProcessFault", "ToxicSpec", "fault_from_args", "register",
]

TOPOLOGY_JSON = "topology.json"


class FaultError(RuntimeError):
    """A fault cannot be applied or undone as asked; the message says why."""


@dataclass(frozen=True)
class ToxicSpec:
    """A toxic without its name (the engine names it after the fault that wants it)."""

    type: str
    stream: str  # "upstream" (towards the destination) or "downstream" (back to the source)
    attributes: tuple[tuple[str, int], ...]

    def to_json(self, name: str) -> dict[str, Any]:
        return {"name": name, "type": self.type, "stream": self.stream, "toxicity": 1.0,
                "attributes": dict(self.attributes)}


@dataclass(frozen=True)
class NetworkEffects:
    disabled: frozenset[str] = frozenset()  # proxy names turned off
    toxics: tuple[tuple[str, ToxicSpec], ...] = ()  # (proxy name, toxic)


@dataclass
class FaultContext:
    """The cluster a fault acts on. `plan`/`api` are None when the topology has chaos off
    (process faults still work then)."""

    data_dir: Path
    topology: Topology
    plan: LinkPlan | None
    api: ToxiproxyApi | None

    @classmethod
    def from_data_dir(cls, data_dir: Path, timeout_s: float = 5.0) -> FaultContext:
        data_dir = Path(data_dir)
        path = data_dir / TOPOLOGY_JSON
        try:
            topology = topology_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise FaultError(f"no cluster in {data_dir} ({TOPOLOGY_JSON} is missing): "
                             f"start one with `dynalab up`") from None
        plan = load_plan(data_dir) if topology.chaos.enabled else None
        api = None
        if plan is not None:
            chaos = topology.chaos
            api = ToxiproxyApi(f"http://{chaos.toxiproxy_host}:{chaos.toxiproxy_api_port}",
                               timeout_s)
        return cls(data_dir, topology, plan, api)

    def network(self) -> tuple[LinkPlan, ToxiproxyApi]:
        if (self.plan is None or self.api is None) and self.topology.chaos.enabled:
            raise FaultError(f"chaos is enabled but {self.data_dir}/links.json is missing: "
                             f"`dynalab down` and `dynalab up` write it")
        if self.plan is None or self.api is None:
            raise FaultError("this cluster's links do not go through Toxiproxy: set "
                             "`chaos: {enabled: true}` in its topology, then `dynalab down` and "
                             "`dynalab up` again")
        return self.plan, self.api


class Fault:
    """Base of every fault's settings. Subclasses are frozen dataclasses with a `kind`."""

    kind: ClassVar[str]
    # Stays in active.json until undone (kill, pause, a latency...); False for one-shot actions
    # (restart, resume), which only clear the faults they supersede.
    lasting: ClassVar[bool] = True

    def validate(self, topology: Topology) -> None:
        """Raise FaultError if the settings name things the topology does not have."""

    def describe(self) -> str:
        raise NotImplementedError

    def args(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: _plain(v) for k, v in fields.items()}


class NetworkFault(Fault):
    def effects(self, plan: LinkPlan, state: Mapping[str, Any]) -> NetworkEffects:
        raise NotImplementedError

    def selected(self, plan: LinkPlan) -> tuple[LinkProxy, ...]:
        """The proxies this fault acts on (for messages; `effects` says how)."""
        raise NotImplementedError


class ProcessFault(Fault):
    def start(self, context: FaultContext) -> str:
        raise NotImplementedError

    def stop(self, context: FaultContext) -> str:
        return ""

    def supersedes(self, other: Fault) -> bool:
        """Whether doing this ends `other` (an active fault): resume ends a pause."""
        return False


FAULTS: dict[str, type[Fault]] = {}
F = TypeVar("F", bound=type[Fault])


def register(cls: F) -> F:
    FAULTS[cls.kind] = cls
    return cls


# Names people write (CLI flags, YAML) that are not Python identifiers.
_ALIASES = {"from": "source", "to": "target"}


def fault_from_args(kind: str, args: Mapping[str, Any],
                    registry: Mapping[str, type[Fault]] | None = None) -> Fault:
    """A fault from its kind and arguments (YAML lists become tuples)."""
    faults = FAULTS if registry is None else registry
    if kind not in faults:
        raise FaultError(f"unknown fault {kind!r}; known: {', '.join(sorted(faults))}")
    cls = faults[kind]
    values = {_ALIASES.get(k, k).replace("-", "_"): _frozen(v) for k, v in args.items()}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise FaultError(f"fault {kind}: unknown argument(s) {', '.join(unknown)}; "
                         f"it takes {', '.join(sorted(names))}")
    try:
        return cls(**values)
    except TypeError as error:
        raise FaultError(f"fault {kind}: {error}") from None
    except (ValueError, TopologyError) as error:
        raise FaultError(f"fault {kind}: {error}") from None


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def places_of(topology: Topology) -> tuple[set[str], set[str], set[str]]:
    """(AZ names, region names, process ids) of a topology."""
    azs = {az.name for region in topology.regions for az in region.azs}
    regions = {region.name for region in topology.regions}
    return azs, regions, set(topology.endpoints())


def check_place(topology: Topology, place: str, *, processes: bool = False) -> None:
    azs, regions, ids = places_of(topology)
    allowed = azs | regions | (ids if processes else set())
    if place not in allowed:
        what = "an AZ, region or process id" if processes else "an AZ or region"
        raise FaultError(f"{place!r} is not {what} of this cluster (AZs: {', '.join(sorted(azs))};"
                         f" regions: {', '.join(sorted(regions))})")
