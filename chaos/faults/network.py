"""Network faults: settings that say which proxies of the link plan are cut or slowed.

Places: an AZ or region name (a source or a destination), or a process id (destination only).
"--from X --to Y" selects the connections that processes in X open to processes in Y: the
proxies whose source group is in X and whose destination is (in) Y. A toxic on such a proxy acts
on every call X makes to Y; `both_ways` adds the calls Y makes to X.

Cutting a link has two modes:
  off        the proxies are disabled: connections are dropped and new ones refused at once
             (what a crashed host or a firewall sending resets looks like);
  blackhole  a `timeout` toxic (0 = forever) on both streams: bytes vanish and connections hang
             until the peer's own timeouts fire (what a real partition looks like).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from dynalab.links import LinkPlan, LinkProxy
from dynalab.topology import Topology

from chaos.faults.base import (FaultError, NetworkEffects, NetworkFault, ToxicSpec, check_place,
                               places_of, register)

__all__ = ["Bandwidth", "Flap", "IsolateAz", "IsolateRegion", "Latency", "Partition"]

DIRECTIONS = ("both", "in", "out")
MODES = ("off", "blackhole")
_BLACKHOLE = (ToxicSpec("timeout", "upstream", (("timeout", 0),)),
              ToxicSpec("timeout", "downstream", (("timeout", 0),)))


def _cut(selected: tuple[LinkProxy, ...], mode: str) -> NetworkEffects:
    if mode == "off":
        return NetworkEffects(disabled=frozenset(p.name for p in selected))
    return NetworkEffects(toxics=tuple((p.name, t) for p in selected for t in _BLACKHOLE))


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, not {value!r}")


def _check_whole(value: int, what: str, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be a whole number >= {minimum}, not {value!r}")


def _select(plan: LinkPlan, keep: Callable[[LinkProxy], bool]) -> tuple[LinkProxy, ...]:
    return tuple(p for p in plan.proxies if keep(p))


def _between(plan: LinkPlan, source: str, target: str, both_ways: bool) -> tuple[LinkProxy, ...]:
    def forward(p: LinkProxy) -> bool:
        return p.source_in(source) and p.dest_in(target)

    def backward(p: LinkProxy) -> bool:
        return both_ways and p.source_in(target) and p.dest_in(source)

    return _select(plan, lambda p: forward(p) or backward(p))


def _check_isolation(direction: str, mode: str) -> None:
    _check_choice(direction, DIRECTIONS, "direction")
    _check_choice(mode, MODES, "mode")


def _isolated(plan: LinkPlan, direction: str, inbound: Callable[[LinkProxy], bool],
              outbound: Callable[[LinkProxy], bool]) -> tuple[LinkProxy, ...]:
    """The proxies an isolation turns off: links into the place unless direction is "out",
    links out of it unless direction is "in"."""
    return _select(plan, lambda p: (direction != "out" and inbound(p))
                   or (direction != "in" and outbound(p)))


def _ways(both_ways: bool) -> str:
    return "both ways" if both_ways else "one way"


@register
@dataclass(frozen=True)
class IsolateAz(NetworkFault):
    """Cut an AZ off from the rest of its region: in (others cannot reach it), out (it cannot
    reach others) or both. Links inside the AZ stay up."""

    kind = "isolate-az"
    az: str
    direction: str = "both"
    mode: str = "off"

    def __post_init__(self) -> None:
        _check_isolation(self.direction, self.mode)

    def validate(self, topology: Topology) -> None:
        if self.az not in places_of(topology)[0]:
            check_place(topology, self.az)
            raise FaultError(f"{self.az!r} is a region, not an AZ (use isolate-region)")

    def selected(self, plan: LinkPlan) -> tuple[LinkProxy, ...]:
        def inbound(p: LinkProxy) -> bool:
            return p.dest_az == self.az and p.source_name != self.az

        def outbound(p: LinkProxy) -> bool:
            return p.source_scope == "az" and p.source_name == self.az and p.dest_az != self.az

        return _isolated(plan, self.direction, inbound, outbound)

    def effects(self, plan: LinkPlan, state: Mapping[str, Any]) -> NetworkEffects:
        return _cut(self.selected(plan), self.mode)

    def describe(self) -> str:
        return f"isolate AZ {self.az} ({self.direction}, {self.mode})"


@register
@dataclass(frozen=True)
class IsolateRegion(NetworkFault):
    """Cut a region off from the other regions (the replicators' links)."""

    kind = "isolate-region"
    region: str
    direction: str = "both"
    mode: str = "off"

    def __post_init__(self) -> None:
        _check_isolation(self.direction, self.mode)

    def validate(self, topology: Topology) -> None:
        if self.region not in places_of(topology)[1]:
            check_place(topology, self.region)
            raise FaultError(f"{self.region!r} is an AZ, not a region (use isolate-az)")

    def selected(self, plan: LinkPlan) -> tuple[LinkProxy, ...]:
        def inbound(p: LinkProxy) -> bool:
            return p.dest_region == self.region and p.source_region != self.region

        def outbound(p: LinkProxy) -> bool:
            return p.source_region == self.region and p.dest_region != self.region

        return _isolated(plan, self.direction, inbound, outbound)

    def effects(self, plan: LinkPlan, state: Mapping[str, Any]) -> NetworkEffects:
        return _cut(self.selected(plan), self.mode)

    def describe(self) -> str:
        return f"isolate region {self.region} ({self.direction}, {self.mode})"


@register
@dataclass(frozen=True)
class Partition(NetworkFault):
    """Split the cluster into groups of AZs (or regions): links between different groups are
    cut, links inside a group stay. Places named in no group keep all their links."""

    kind = "partition"
    groups: tuple[tuple[str, ...], ...]
    mode: str = "off"

    def __post_init__(self) -> None:
        _check_choice(self.mode, MODES, "mode")
        if len(self.groups) < 2 or any(not group for group in self.groups):
            raise ValueError("a partition needs at least two non-empty groups")
        names = [name for group in self.groups for name in group]
        if len(set(names)) != len(names):
            raise ValueError(f"a place is in two groups: {self.groups}")

    def validate(self, topology: Topology) -> None:
        for name in (name for group in self.groups for name in group):
            check_place(topology, name)

    def _side(self, *places: str | None) -> int | None:
        for index, group in enumerate(self.groups):
            if any(place in group for place in places if place is not None):
                return index
        return None

    def selected(self, plan: LinkPlan) -> tuple[LinkProxy, ...]:
        def crosses(p: LinkProxy) -> bool:
            source = self._side(p.source_name, p.source_region)
            dest = self._side(p.dest_az, p.dest_region)
            return source is not None and dest is not None and source != dest

        return _select(plan, crosses)

    def effects(self, plan: LinkPlan, state: Mapping[str, Any]) -> NetworkEffects:
        return _cut(self.selected(plan), self.mode)

    def describe(self) -> str:
        return "partition " + " | ".join(",".join(group) for group in self.groups) + \
            f" ({self.mode})"


@dataclass(frozen=True)
class _Between(NetworkFault):
    """Base of the faults on the links from `source` to `target`."""

    source: str
    target: str

    def validate(self, topology: Topology) -> None:
        check_place(topology, self.source)
        check_place(topology, self.target, processes=True)

    def selected(self, plan: LinkPlan) -> tuple[LinkProxy, ...]:
        return _between(plan, self.source, self.target, getattr(self, "both_ways", False))


@register
@dataclass(frozen=True)
class Latency(_Between):
    """Every call from source to target takes `ms` (+/- jitter_ms) longer."""

    kind = "latency"
    ms: int
    jitter_ms: int = 0
    both_ways: bool = False

    def __post_init__(self) -> None:
        _check_whole(self.ms, "ms", 1)
        _check_whole(self.jitter_ms, "jitter_ms")

    def effects(self, plan: LinkPlan, state: Mapping[str, Any]) -> NetworkEffects:
        # One toxic on the response stream: a request/response exchange pays the delay once.
        toxic = ToxicSpec("latency", "downstream",
                          (("latency", self.ms), ("jitter", self.jitter_ms)))
        return NetworkEffects(toxics=tuple((p.name, toxic) for p in self.selected(plan)))

    def describe(self) -> str:
        jitter = f" +/- {self.jitter_ms} ms" if self.jitter_ms else ""
        return f"latency {self.source} -> {self.target}: {self.ms} ms{jitter} " \
               f"({_ways(self.both_ways)})"


@register
@dataclass(frozen=True)
class Bandwidth(_Between):
    """Calls from source to target limited to `kbps` kilobits per second in each direction."""

    kind = "bandwidth"
    kbps: int
    both_ways: bool = False

    def __post_init__(self) -> None:
        _check_whole(self.kbps, "kbps", 1)

    @property
    def rate_kb_s(self) -> int:
        # Toxiproxy's rate is in KB/s (1 KB = 1000 B); never 0, which would mean "unlimited".
        return max(1, math.ceil(self.kbps / 8))

    def effects(self, plan: LinkPlan, state: Mapping[str, Any]) -> NetworkEffects:
        toxics = [ToxicSpec("bandwidth", stream, (("rate", self.rate_kb_s),))
                  for stream in ("upstream", "downstream")]
        return NetworkEffects(toxics=tuple((p.name, t) for p in self.selected(plan)
                                           for t in toxics))

    def describe(self) -> str:
        return f"bandwidth {self.source} -> {self.target}: {self.kbps} kbit/s " \
               f"({_ways(self.both_ways)})"


@register
@dataclass(frozen=True)
class Flap(_Between):
    """The links go down and up `count` times: down for half of each period, then up. The
    engine drives it (state {"down": bool}); the links are up when it ends."""

    kind = "flap"
    period_ms: int
    count: int
    both_ways: bool = False

    def __post_init__(self) -> None:
        _check_whole(self.period_ms, "period_ms", 2)
        _check_whole(self.count, "count", 1)

    @property
    def total_s(self) -> float:
        return self.period_ms * self.count / 1000

    def effects(self, plan: LinkPlan, state: Mapping[str, Any]) -> NetworkEffects:
        if not state.get("down"):
            return NetworkEffects()
        return _cut(self.selected(plan), "off")

    def describe(self) -> str:
        return f"flap {self.source} -> {self.target}: {self.count} x {self.period_ms} ms " \
               f"({_ways(self.both_ways)})"
