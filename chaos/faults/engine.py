"""Applying, undoing and healing faults, and keeping DATA_DIR/faults/active.json.

active.json is the state the settings are kept apart from: every fault applied and not yet
undone, with its id, kind, arguments and (for flap) whether its links are down now. Commands in
different shells change it under one file lock, so `dynalab chaos` and an experiment can run at
once.

The network is reconciled, not patched: after any change the engine computes what the proxies
should look like (the standing latencies of the topology plus the effects of every active
network fault) and makes the Toxiproxy server match with the fewest calls. So applying, undoing
and healing share one code path, faults compose, and heal also repairs a restarted Toxiproxy.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from dynalab.files import atomic_write_text
from dynalab.links import ACTIVE_FAULTS_FILE, LinkPlan, baseline_toxics

from chaos.faults.api import ToxiproxyApi, ToxiproxyError
from chaos.faults.base import (FAULTS, Fault, FaultContext, FaultError, NetworkEffects,
                               NetworkFault, ProcessFault, fault_from_args)
from chaos.faults.network import Flap
from chaos.faults.process import Restart, clear_all_skews

__all__ = ["ActiveFault", "Applied", "apply_fault", "active_faults", "heal", "sync_network",
           "undo_fault"]

_LOCK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ActiveFault:
    id: str
    fault: Fault
    since: float  # wall clock, for people
    state: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.fault.kind, "args": self.fault.args(),
                "description": self.fault.describe(), "since": self.since,
                "state": dict(self.state)}


@dataclass(frozen=True)
class Applied:
    id: str | None  # None for one-shot actions (restart, resume), which leave nothing active
    message: str


# -- the record ----------------------------------------------------------------------------------

class _Record:
    """active.json while the lock is held; `save()` writes it back."""

    def __init__(self, path: Path, registry: Mapping[str, type[Fault]]) -> None:
        self.path = path
        raw = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        self.next_id = int(raw.get("next_id", 1))
        self.faults = [ActiveFault(f["id"], fault_from_args(f["kind"], f["args"], registry),
                                   f["since"], f.get("state", {}))
                       for f in raw.get("faults", [])]

    def add(self, fault: Fault) -> ActiveFault:
        entry = ActiveFault(f"f{self.next_id}", fault, time.time())
        self.next_id += 1
        self.faults.append(entry)
        return entry

    def find(self, fault_id: str) -> ActiveFault:
        for entry in self.faults:
            if entry.id == fault_id:
                return entry
        raise FaultError(f"no active fault {fault_id!r} (active: "
                         f"{', '.join(e.id for e in self.faults) or 'none'})")

    def remove(self, fault_id: str) -> None:
        self.faults = [e for e in self.faults if e.id != fault_id]

    def set_state(self, fault_id: str, state: Mapping[str, Any]) -> None:
        self.faults = [ActiveFault(e.id, e.fault, e.since, dict(state)) if e.id == fault_id
                       else e for e in self.faults]

    def save(self) -> None:
        doc = {"next_id": self.next_id, "faults": [e.to_json() for e in self.faults]}
        atomic_write_text(self.path, json.dumps(doc, indent=2) + "\n")


_THREAD_LOCK = threading.RLock()  # flock is per open file: threads of one process need this too


@contextlib.contextmanager
def _locked(context: FaultContext,
            registry: Mapping[str, type[Fault]] | None = None) -> Iterator[_Record]:
    path = Path(context.data_dir) / ACTIVE_FAULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _LOCK_TIMEOUT_S
    with _THREAD_LOCK, open(path.with_suffix(".lock"), "a+") as lock:
        while True:  # bounded by the deadline
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FaultError(f"{path} is locked by another dynalab command") from None
                time.sleep(0.05)
        try:
            yield _Record(path, FAULTS if registry is None else registry)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def active_faults(context: FaultContext) -> list[ActiveFault]:
    with _locked(context) as record:
        return list(record.faults)


# -- the network ---------------------------------------------------------------------------------

def _desired(context: FaultContext, plan: LinkPlan,
             faults: list[ActiveFault]) -> tuple[set[str], dict[str, dict[str, dict[str, Any]]]]:
    """(disabled proxy names, proxy -> toxic name -> toxic) the proxies should have now."""
    disabled: set[str] = set()
    toxics: dict[str, dict[str, dict[str, Any]]] = {p.name: {} for p in plan.proxies}
    for proxy, toxic in baseline_toxics(plan, context.topology.chaos):
        toxics[proxy][toxic["name"]] = toxic
    for entry in faults:
        if not isinstance(entry.fault, NetworkFault):
            continue
        effects: NetworkEffects = entry.fault.effects(plan, entry.state)
        disabled |= effects.disabled
        for proxy, spec in effects.toxics:
            name = f"{entry.id}-{spec.type}-{spec.stream}"
            toxics[proxy][name] = spec.to_json(name)
    return disabled, toxics


def _same(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    attributes = current.get("attributes") or {}
    return (current.get("type") == wanted["type"] and current.get("stream") == wanted["stream"]
            and all(attributes.get(k) == v for k, v in wanted["attributes"].items()))


def sync_network(context: FaultContext, faults: list[ActiveFault]) -> list[str]:
    """Make the Toxiproxy server match the baseline plus `faults`; the changes made."""
    plan, api = context.network()
    present = api.proxies()
    missing = [p for p in plan.proxies if p.name not in present]
    changes: list[str] = []
    if missing:  # the server restarted or lost proxies: create them again
        api.populate([{"name": p.name, "listen": p.listen, "upstream": p.upstream,
                       "enabled": True} for p in missing])
        present = api.proxies()
        changes.append(f"created {len(missing)} missing proxies")
    disabled, toxics = _desired(context, plan, faults)
    for proxy in plan.proxies:
        changes += _sync_proxy(api, proxy.name, present[proxy.name], proxy.name not in disabled,
                               toxics[proxy.name])
    return changes


def _sync_proxy(api: ToxiproxyApi, name: str, current: Mapping[str, Any], enabled: bool,
                wanted: Mapping[str, dict[str, Any]]) -> list[str]:
    changes = []
    if not enabled and current.get("enabled", True):
        api.set_enabled(name, False)  # first: no new connection sees a half-made state
        changes.append(f"disabled {name}")
    have = {t["name"]: t for t in current.get("toxics") or []}
    for toxic_name in have.keys() - wanted.keys():
        api.remove_toxic(name, toxic_name)
        changes.append(f"removed {toxic_name} from {name}")
    for toxic_name, toxic in wanted.items():
        if toxic_name not in have:
            api.add_toxic(name, toxic)
            changes.append(f"added {toxic_name} to {name}")
        elif not _same(have[toxic_name], toxic):
            api.update_toxic(name, toxic)
            changes.append(f"updated {toxic_name} on {name}")
    if enabled and not current.get("enabled", True):
        api.set_enabled(name, True)
        changes.append(f"enabled {name}")
    return changes


# -- apply / undo / heal -------------------------------------------------------------------------

def _summary(changes: list[str]) -> str:
    if not changes:
        return "no proxy changed"
    shown = changes[:6]
    more = f"\n  ... and {len(changes) - len(shown)} more" if len(changes) > len(shown) else ""
    return "\n".join(f"  {c}" for c in shown) + more


def apply_fault(context: FaultContext, fault: Fault, *,
                progress: Callable[[str], None] | None = None,
                stop: threading.Event | None = None) -> Applied:
    """Do `fault` and record it if it lasts. A flap runs to its end here (progress reports each
    toggle; `stop` ends it early) and leaves nothing active."""
    fault.validate(context.topology)
    if isinstance(fault, NetworkFault):
        context.network()
    if isinstance(fault, Flap):
        return _run_flap(context, fault, progress or (lambda _: None), stop or threading.Event())
    with _locked(context) as record:
        if isinstance(fault, ProcessFault):
            message = fault.start(context)
            for entry in [e for e in record.faults if fault.supersedes(e.fault)]:
                record.remove(entry.id)
            if isinstance(fault, Restart) and fault.restarts_toxiproxy():
                message += "\n" + _summary(sync_network(context, record.faults))
            entry_id = None
            if fault.lasting:
                entry_id = record.add(fault).id
            record.save()
            return Applied(entry_id, message)
        entry = record.add(fault)
        try:
            changes = sync_network(context, record.faults)
        except BaseException:
            record.remove(entry.id)
            _quietly(lambda: sync_network(context, record.faults))
            raise
        record.save()
        return Applied(entry.id, f"{fault.describe()}\n{_summary(changes)}")


def _quietly(action: Callable[[], object]) -> None:
    try:
        action()
    except (ToxiproxyError, FaultError):
        pass  # already failing: the first error is the one to report


def _run_flap(context: FaultContext, fault: Flap, progress: Callable[[str], None],
              stop: threading.Event) -> Applied:
    with _locked(context) as record:
        entry = record.add(fault)
        record.save()
    half_s = fault.period_ms / 2000
    try:
        for index in range(fault.count):  # bounded: count periods
            for down in (True, False):
                _set_flap(context, entry.id, down)
                progress(f"{fault.describe()}: {'down' if down else 'up'} "
                         f"({index + 1}/{fault.count})")
                if stop.wait(half_s):
                    return Applied(None, f"{fault.describe()}: stopped early")
    finally:
        with _locked(context) as record:
            record.remove(entry.id)
            _quietly(lambda: sync_network(context, record.faults))
            record.save()
    return Applied(None, f"{fault.describe()}: done, links up")


def _set_flap(context: FaultContext, fault_id: str, down: bool) -> None:
    with _locked(context) as record:
        record.set_state(fault_id, {"down": down})
        sync_network(context, record.faults)
        record.save()


def undo_fault(context: FaultContext, fault_id: str) -> str:
    with _locked(context) as record:
        entry = record.find(fault_id)
        message = ""
        if isinstance(entry.fault, ProcessFault):
            message = entry.fault.stop(context)
        record.remove(fault_id)
        if isinstance(entry.fault, NetworkFault):
            message = _summary(sync_network(context, record.faults))
        record.save()
        return f"undid {fault_id} ({entry.fault.describe()})" + (f"\n{message}" if message else "")


def heal(context: FaultContext) -> str:
    """Undo every fault: process faults in reverse order (resume, restart, clear skews), then
    the network back to the baseline (proxies re-created if missing, all enabled, only the
    standing latencies left). Every step is tried; failures are reported together."""
    lines: list[str] = []
    errors: list[str] = []
    with _locked(context) as record:
        failed: list[ActiveFault] = []
        for entry in reversed(record.faults):
            if isinstance(entry.fault, ProcessFault):
                try:
                    text = entry.fault.stop(context)
                    lines.append(f"undid {entry.id} ({entry.fault.describe()})"
                                 + (f": {text}" if text else ""))
                except Exception as error:  # keep healing the rest; it stays recorded
                    errors.append(f"{entry.id} ({entry.fault.describe()}): {error}")
                    failed.append(entry)
        record.faults = failed[::-1]
        cleared = clear_all_skews(context.data_dir)
        if cleared:
            lines.append(f"cleared clock skew of {', '.join(cleared)}")
        if context.plan is not None:
            try:
                changes = sync_network(context, record.faults)
                lines.append("network back to the baseline:\n" + _summary(changes))
            except (ToxiproxyError, FaultError) as error:
                errors.append(f"network: {error}")
        record.save()
    if errors:
        raise FaultError("heal did not finish:\n  " + "\n  ".join(errors)
                         + ("\n" + "\n".join(lines) if lines else ""))
    return "\n".join(lines) or "nothing to heal"

