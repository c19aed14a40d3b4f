"""run_benchmark(settings) -> BenchResult: table set-up, load phase, run phase.

One set of `workers` processes (multiprocessing, spawn: no inherited event loops or sockets) runs
the phases in turn; each phase starts on all workers at one wall-clock instant, forwards a progress
sample once a second, and merges the workers' histograms into the result.
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import queue as queue_module
import random
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from chaos.workload.auth import make_header_source
from chaos.workload.bodies import KeySchema
from chaos.workload.client import DynamoClient
from chaos.workload.results import (BenchResult, CpuUsage, PhaseResult, SecondSample, op_result,
                                    second_sample)
from chaos.workload.settings import BenchSettings
from chaos.workload.stats import TallySnapshot
from chaos.workload.table import TableInfo, ensure_table
from chaos.workload.worker import WorkerPlan, WorkerReport, worker_main

__all__ = ["BenchError", "ProgressCallback", "run_benchmark", "run_phases", "prepare_table"]

ProgressCallback = Callable[[str, SecondSample], None]  # (phase, sample), once a second

_READY_WAIT_S = 120.0  # spawning imports aiohttp & co.; slow machines need a while
_START_DELAY_S = 0.1  # from the start signal to the common start instant
_PROGRESS_SLACK_S = 0.3  # report second k this long after it ends (workers ship at +0.05 s)
_STOP_WAIT_S = 5.0
_SILENCE_LIMIT_S = 30.0  # a phase with no message for this long (plus timeouts) is stuck


class BenchError(RuntimeError):
    pass


@dataclass
class _Inbox:
    """What the workers have sent so far in one phase."""

    workers: int
    ready: set[int] = field(default_factory=set)
    reports: dict[int, WorkerReport] = field(default_factory=dict)
    seconds: dict[int, dict[str, list[TallySnapshot]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def take(self, kind: str, index: int, payload: Any) -> None:
        if kind == "ready":
            self.ready.add(index)
        elif kind == "tick":
            for second, per_op in payload:
                for op, snap in per_op.items():
                    self.seconds[second][op].append(snap)
        elif kind == "done":
            self.reports[index] = payload


@dataclass
class _Workers:
    """The worker processes of one benchmark and their messages, sorted by phase."""

    processes: list[mp.process.BaseProcess]
    channel: Any  # multiprocessing Queue
    inboxes: dict[str, _Inbox]
    last_message: float = field(default_factory=time.monotonic)

    def receive(self, wait_s: float) -> None:
        try:
            message = self.channel.get(timeout=max(0.01, wait_s))
        except queue_module.Empty:
            for proc in self.processes:
                if proc.exitcode not in (None, 0):
                    raise BenchError(f"bench worker {proc.name} died (exit code {proc.exitcode})")
            return
        self.last_message = time.monotonic()
        if message[0] == "error":
            raise BenchError(f"bench worker {message[1]} failed:\n{message[2]}")
        kind, index, phase = message[0], message[1], message[2]
        self.inboxes[phase].take(kind, index, message[3] if len(message) > 3 else None)


def prepare_table(settings: BenchSettings) -> TableInfo:
    """Find the table (or create it when settings.create_table) and return its key schema."""
    async def go() -> TableInfo:
        headers = make_header_source(settings.endpoint, settings.region, settings.sign)
        async with DynamoClient(settings.endpoint, headers, 1, settings.timeout_s) as client:
            return await ensure_table(client, settings.table, settings.create_table)
    return asyncio.run(go())


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stop(processes: list[mp.process.BaseProcess], graceful: bool) -> None:
    """Join each worker (if graceful); terminate, then kill, those of ours that do not exit."""
    started = [proc for proc in processes if proc.pid is not None]
    deadline = time.monotonic() + (_STOP_WAIT_S if graceful else 0.0)
    for proc in started:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in started:
        if proc.is_alive():
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)


def _await_ready(workers: _Workers, phase: str) -> None:
    inbox = workers.inboxes[phase]
    deadline = time.monotonic() + _READY_WAIT_S
    while len(inbox.ready) < inbox.workers:
        if time.monotonic() > deadline:
            raise BenchError(f"only {len(inbox.ready)} of {inbox.workers} workers got ready")
        workers.receive(0.5)


def _sample(inbox: _Inbox, second: int, warmup_s: float,
            top_level: tuple[str, ...]) -> SecondSample:
    return second_sample(second, second < warmup_s, inbox.seconds.get(second, {}), top_level)


def _collect(settings: BenchSettings, phase: str, workers: _Workers, start_wall: float,
             progress: ProgressCallback | None, top_level: tuple[str, ...]) -> None:
    """Receive until every worker is done with `phase`, reporting progress once a second."""
    inbox = workers.inboxes[phase]
    warmup_s = settings.warmup_s if phase == "run" else 0.0
    silence_s = _SILENCE_LIMIT_S + 3 * settings.timeout_s
    next_second = 0
    last_second = math.ceil(settings.warmup_s + settings.duration_s) if phase == "run" else 0
    max_messages = 10_000_000  # ~ ticks x workers of a week-long run: a bound, never reached
    for _ in range(max_messages):
        if len(inbox.reports) == inbox.workers:
            # The rest of the run's seconds, so a progress consumer sees every second once.
            for second in range(next_second, last_second):
                if progress is not None:
                    progress(phase, _sample(inbox, second, warmup_s, top_level))
            return
        due = start_wall + next_second + 1 + _PROGRESS_SLACK_S
        if time.time() >= due:
            if progress is not None:
                progress(phase, _sample(inbox, next_second, warmup_s, top_level))
            next_second += 1
            continue
        if time.monotonic() - workers.last_message > silence_s:
            raise BenchError(f"no word from the bench workers for {silence_s:.0f} s")
        workers.receive(min(0.5, due - time.time()))
    raise BenchError("bench phase did not finish")


def _phase_result(settings: BenchSettings, phase: str, inbox: _Inbox, top_level: tuple[str, ...],
                  operations: tuple[str, ...], parent_cpu_s: float, parent_wall_s: float
                  ) -> PhaseResult:
    reports = [inbox.reports[i] for i in sorted(inbox.reports)]
    wall_s = max(r.wall_s for r in reports)
    measured_s = settings.duration_s if phase == "run" else round(wall_s, 3)
    ops = tuple(op_result(op, [r.totals[op] for r in reports], measured_s) for op in operations)
    total = op_result("total", [r.totals[op] for r in reports for op in top_level], measured_s)
    if phase == "run":
        last = math.ceil(settings.warmup_s + settings.duration_s)
    else:
        last = max(inbox.seconds, default=-1) + 1
    warmup_s = settings.warmup_s if phase == "run" else 0.0
    series = tuple(_sample(inbox, s, warmup_s, top_level) for s in range(last))
    requests: dict[str, int] = defaultdict(int)
    for report in reports:
        for operation, count in report.requests.items():
            requests[operation] += count
    workers_cpu_s = sum(r.cpu_s for r in reports)
    cpu = CpuUsage(
        workers_percent_of_core=round(100 * workers_cpu_s / wall_s, 1) if wall_s else 0.0,
        per_worker_percent=tuple(round(100 * r.cpu_s / r.wall_s, 1) if r.wall_s else 0.0
                                 for r in reports),
        parent_percent_of_core=(round(100 * parent_cpu_s / parent_wall_s, 1)
                                if parent_wall_s else 0.0),
        workers_cpu_s=round(workers_cpu_s, 3), wall_s=round(wall_s, 3))
    return PhaseResult(phase, measured_s, ops, total, series, cpu, dict(sorted(requests.items())),
                       sum(r.outside_window for r in reports))


def _phase_operations(settings: BenchSettings,
                      phase: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(operations of the mix, operations with a row) of a phase."""
    if phase == "load":
        return ("insert",), ("insert",)
    return settings.spec.operations, settings.spec.recorded_operations


def _run_one(settings: BenchSettings, phase: str, workers: _Workers, signal: Any,
             progress: ProgressCallback | None) -> PhaseResult:
    start_event, start_at = signal
    top_level, operations = _phase_operations(settings, phase)
    _await_ready(workers, phase)
    start_wall = time.time() + _START_DELAY_S
    start_at.value = start_wall
    start_event.set()
    cpu0, wall0 = _cpu_s(), time.monotonic()
    _collect(settings, phase, workers, start_wall, progress, top_level)
    parent_cpu_s, parent_wall_s = _cpu_s() - cpu0, time.monotonic() - wall0
    return _phase_result(settings, phase, workers.inboxes[phase], top_level, operations,
                         parent_cpu_s, parent_wall_s)


def run_phases(settings: BenchSettings, schema: KeySchema, phases: tuple[str, ...],
               progress: ProgressCallback | None = None) -> dict[str, PhaseResult]:
    """Run phases ("load", "run") in turn on one set of settings.workers processes.

    settings.seed must be set (run_benchmark picks one).
    """
    assert settings.seed is not None
    ctx = mp.get_context("spawn")
    signals = [(ctx.Event(), ctx.Value("d", 0.0)) for _ in phases]
    channel = ctx.Queue()
    processes = [ctx.Process(target=worker_main, name=f"dynalab-bench-{i}", daemon=True,
                             args=(WorkerPlan(settings, schema, phases, i, settings.seed),
                                   channel, signals))
                 for i in range(settings.workers)]
    workers = _Workers(processes, channel, {p: _Inbox(settings.workers) for p in phases})
    results: dict[str, PhaseResult] = {}
    try:
        for proc in processes:
            proc.start()
        for phase, signal in zip(phases, signals):
            results[phase] = _run_one(settings, phase, workers, signal, progress)
    finally:
        # After a failure the workers may be mid-run: do not wait for them to finish.
        _stop(processes, graceful=len(results) == len(phases))
        channel.cancel_join_thread()  # never block on a queue a dead worker left half-read
        channel.close()
    return results


def run_benchmark(settings: BenchSettings, progress: ProgressCallback | None = None) -> BenchResult:
    """Prepare the table, load it if settings.load, then run the workload for duration_s.

    Workers are spawned processes: a script calling this needs the usual
    `if __name__ == "__main__":` guard.
    """
    if settings.seed is None:
        settings = replace(settings, seed=random.SystemRandom().randrange(2**31))
    info = prepare_table(settings)
    phases = (("load",) if settings.load else ()) + (("run",) if settings.duration_s > 0 else ())
    results = run_phases(settings, info.schema, phases, progress) if phases else {}
    return BenchResult(settings, results.get("load"), results.get("run"),
                       table_created=info.created)

