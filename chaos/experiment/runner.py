"""Running an experiment: load, faults on schedule, heal, recovery, final reads, verdict, report.

    target = Target.from_data_dir(Path(".dynalab"))      # endpoints from cluster.json
    report = run_experiment(load_experiment("chaos/experiments/az-isolation.yaml"), target,
                            Path("out"))
    report.ok, report.verdict

Phases (times on the run's clock, 0 = the table is ready):
  setup                 every key is set to a value of this run
  [0, duration_s)       the register workload runs; faults are applied and undone on schedule
  duration_s            every fault still active is undone, then `heal` (all faults, any source)
  [heal, recovered]     the load goes on until the steady state holds for window_s again (or
                        recovery_timeout_s passes)
  after                 the load stops; a consistent read of every key (per region, retried
                        until the regions agree when the table is global); the verdict.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from chaos.faults import FaultContext, heal
from chaos.workload.bodies import KeySchema
from chaos.workload.table import ensure_table

from chaos.experiment.history import HistoryEntry, write_history
from chaos.experiment.register import KEY_ATTR, Clock, RegisterWorkload, key_names
from chaos.experiment.report import Report, series_of, write_report
from chaos.experiment.schedule import TimedFault, Timeline, expand
from chaos.experiment.spec import Experiment, ExperimentError
from chaos.experiment.verdict import first_good_window, convergence_of, judge

__all__ = ["GLOBAL_TABLES", "Target", "run_experiment"]

GLOBAL_TABLES = "global_tables"
_PROGRESS_S = 1.0
_CONVERGE_S = 30.0  # final reads retried this long for the regions to agree
_FINAL_READ_S = 30.0


@dataclass(frozen=True)
class Target:
    """What an experiment runs against: DynamoDB endpoints per region, and the cluster to fault
    (None: endpoints only; an experiment with faults then cannot run)."""

    endpoints: Mapping[str, str]
    context: FaultContext | None
    # Why global tables cannot work here (e.g. no replicator runs), or None if they may.
    no_global_tables: str | None = None

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Target:
        path = Path(data_dir) / "cluster.json"
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ExperimentError(f"no cluster.json in {data_dir}: start the cluster with "
                                  f"`dynalab up --detach` first") from None
        regions = info["regions"]
        endpoints = {name: region["endpoint_url"] for name, region in regions.items()}
        idle = sorted(name for name, region in regions.items()
                      if (region.get("replicator") or {}).get("pid") is None)
        reason = f"no replicator runs in {', '.join(idle)} (cluster.json)" if idle else None
        return cls(endpoints, FaultContext.from_data_dir(Path(data_dir)), reason)


def run_experiment(experiment: Experiment, target: Target, out_dir: Path, *,
                   log: Callable[[str], None] = print) -> Report:
    """Run it, write report.json, summary.txt, plot.png and history.jsonl to `out_dir`.
    Fault kinds come from chaos.faults.FAULTS (`register` adds one)."""
    report, history = asyncio.run(_Run(experiment, target, log).run())
    out_dir.mkdir(parents=True, exist_ok=True)
    write_history(history, out_dir / "history.jsonl")
    write_report(report, out_dir)
    return report


class _Run:
    def __init__(self, experiment: Experiment, target: Target,
                 log: Callable[[str], None]) -> None:
        self.experiment, self.target, self.log = experiment, target, log
        self.history: list[HistoryEntry] = []
        self.started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        self.regions = self._regions()
        self.global_table = GLOBAL_TABLES in experiment.requires

    def _regions(self) -> list[str]:
        wanted = self.experiment.workload.regions
        regions = list(self.target.endpoints) if wanted == "all" else list(wanted)
        missing = [r for r in regions if r not in self.target.endpoints]
        if missing or not regions:
            raise ExperimentError(f"no endpoint for region(s) {missing or wanted}; the cluster "
                                  f"has {', '.join(self.target.endpoints)}")
        return regions

    def _skipped(self, reason: str) -> tuple[Report, list[HistoryEntry]]:
        self.log(f"skipped: {reason}")
        return Report(self.experiment, "skipped", reason, self.started_at, (), 0.0, 0.0, None,
                      None), self.history

    async def run(self) -> tuple[Report, list[HistoryEntry]]:
        if self.global_table and len(self.regions) < 2:
            return self._skipped("needs global tables across at least two regions")
        if self.global_table and self.target.no_global_tables:
            return self._skipped(f"needs global tables: {self.target.no_global_tables}")
        timed = self._timed_faults()
        endpoints = {r: self.target.endpoints[r] for r in self.regions}
        clock = Clock(time.monotonic())
        async with RegisterWorkload(self.experiment.workload, endpoints, clock,
                                    self.history.append) as load:
            reason = await self._prepare(load)
            if reason is not None:
                return self._skipped(reason)
            clock = Clock(time.monotonic())  # the run starts once the table is ready
            load.clock = clock
            missing = await load.initialize(_FINAL_READ_S)
            if missing:
                raise ExperimentError(f"the cluster did not acknowledge the initial write of "
                                      f"{len(missing)} key(s) within {_FINAL_READ_S:g} s; "
                                      f"is it healthy? (dynalab status)")
            timeline = Timeline(self.target.context, timed, clock.now, self.log) \
                if self.target.context is not None else None
            report = await self._drive(load, clock, timeline)
        return report, self.history

    def _timed_faults(self) -> list[TimedFault]:
        if not self.experiment.faults:
            return []
        context = self.target.context
        if context is None:
            raise ExperimentError("the experiment has faults but the target has no cluster "
                                  "to apply them to")
        return expand(self.experiment.faults, context.topology, self.experiment.duration_s)

    async def _prepare(self, load: RegisterWorkload) -> str | None:
        """Create the table (a global one when required); why the run must be skipped, if so."""
        schema = KeySchema(hash_name=KEY_ATTR, range_name=None)
        table = self.experiment.workload.table
        if self.global_table:
            await load.prepare()
            return await load.make_global()
        for region in self.regions:  # independent tables of the same name, one per region
            await ensure_table(load.http(region), table, True, schema)
        return None

    async def _drive(self, load: RegisterWorkload, clock: Clock,
                     timeline: Timeline | None) -> Report:
        experiment = self.experiment
        stop = asyncio.Event()
        clients = asyncio.create_task(load.run(stop))
        if timeline is not None:
            timeline.start()
        try:
            await self._progress_until(clock, experiment.duration_s, clients)
            heal_s = await self._heal(timeline, clock)
            await self._recover(clock, heal_s, clients)
        finally:
            stop.set()
            await clients
        end_s = clock.now()
        finals = await self._final_reads(load)
        return self._report(load, finals, heal_s, end_s, timeline)

    async def _progress_until(self, clock: Clock, until_s: float,
                              clients: asyncio.Task[None]) -> None:
        seen = 0
        while clock.now() < until_s and not clients.done():  # bounded by until_s
            await asyncio.sleep(min(_PROGRESS_S, max(0.0, until_s - clock.now())))
            fresh = self.history[seen:]
            seen = len(self.history)
            ok = sum(e.outcome == "ok" for e in fresh)
            errors = sum(e.is_error for e in fresh)
            self.log(f"[{clock.now():6.1f}s] ok {ok:5d}  errors {errors:5d}")
        if clients.done():
            clients.result()  # a crashed client is a bug: raise it

    async def _heal(self, timeline: Timeline | None, clock: Clock) -> float:
        loop = asyncio.get_running_loop()
        if timeline is not None:
            await loop.run_in_executor(None, timeline.stop)
            context = self.target.context
            assert context is not None
            message = await loop.run_in_executor(None, heal, context)
            self.log(f"[{clock.now():6.1f}s] healed: {message.splitlines()[0]}")
        return clock.now()

    async def _recover(self, clock: Clock, heal_s: float,
                       clients: asyncio.Task[None]) -> None:
        steady = self.experiment.steady_state
        limit_s = heal_s + steady.recovery_timeout_s + steady.window_s
        while clock.now() < limit_s and not clients.done():  # bounded by limit_s
            await asyncio.sleep(0.5)
            start = first_good_window(self.history, steady, heal_s, clock.now())
            if start is not None and clock.now() >= start + steady.window_s:
                self.log(f"[{clock.now():6.1f}s] steady again since {start:.1f}s")
                return
        self.log(f"[{clock.now():6.1f}s] not recovered within {steady.recovery_timeout_s:g} s")

    async def _final_reads(self, load: RegisterWorkload) -> dict[str, dict[str, str | None]]:
        """region -> key -> value; for a global table retried until the regions agree."""
        deadline = time.monotonic() + (_CONVERGE_S if self.global_table else 0.0)
        for _ in range(1000):  # bounded by the deadline; each pass reads every key
            finals = {r: await load.final_reads(r, _FINAL_READ_S) for r in self.regions}
            if not self.global_table or _agree(finals) or time.monotonic() > deadline:
                return finals
            await asyncio.sleep(1.0)
        return finals

    def _report(self, load: RegisterWorkload, finals: dict[str, dict[str, str | None]],
                heal_s: float, end_s: float, timeline: Timeline | None) -> Report:
        experiment = self.experiment
        home = {key: region for region in self.regions for key in load.home_keys(region)}
        shared = experiment.workload.key_ownership == "shared" and len(self.regions) > 1
        # Each key is judged on its home region's operations (other regions see a global
        # table's replicated writes late, by design).
        checked = [e for e in self.history if home.get(e.key) == e.region] if not shared \
            else self.history
        final = {key: finals[home[key]][key] for key in key_names(experiment.workload.keys)
                 if key in finals.get(home[key], {})}
        convergence = convergence_of(finals if self.global_table else None,
                                     None if self.global_table else "not a global table")
        verdict = judge(checked, final, settings=experiment.steady_state,
                        first_fault_s=experiment.first_fault_s, heal_s=heal_s, end_s=end_s,
                        check_linearizability=not shared, convergence=convergence)
        bucket_s = 0.5 if end_s < 60 else 1.0
        events = tuple(timeline.events) if timeline is not None else ()
        return Report(experiment, "completed", None, self.started_at, events, heal_s, end_s,
                      series_of(self.history, end_s, bucket_s), verdict)


def _agree(finals: Mapping[str, Mapping[str, str | None]]) -> bool:
    values = list(finals.values())
    return all(v == values[0] for v in values[1:])
