"""One load-generating process: `connections` asyncio tasks sharing one DynamoClient.

The parent starts workers with multiprocessing (spawn) and they report through one queue:
    ("ready", index, phase)                     set up, waiting for the phase's start signal
    ("tick", index, phase, [(second, {op: TallySnapshot})])   finished one-second buckets
    ("done", index, phase, WorkerReport)        totals, request counts, own CPU use
    ("error", index, traceback text)
A worker runs its phases (load, then run) in turn on one client, so the run phase starts on
warm connections. All workers start a phase at one wall-clock instant, so their one-second
buckets line up.
"""
from __future__ import annotations

import asyncio
import gc
import random
import resource
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from time import perf_counter
from typing import Any

from chaos.workload.auth import make_header_source
from chaos.workload.bodies import KeySchema, RequestBuilder, version_of
from chaos.workload.client import DynamoClient, Reply
from chaos.workload.keys import make_chooser
from chaos.workload.settings import BenchSettings
from chaos.workload.stats import Recorder, TallySnapshot

__all__ = ["WorkerPlan", "WorkerReport", "Engine", "worker_main"]

_START_WAIT_S = 120.0  # how long a ready worker waits for the parent's start signal
_TICK_SLACK_S = 0.05  # ship second k a little after it ends, so its last completions are in
_MAX_TICKS = 7 * 86_400  # a week of one-second ticks: the ticker's loop bound


@dataclass(frozen=True)
class WorkerPlan:
    settings: BenchSettings
    schema: KeySchema
    phases: tuple[str, ...]  # "load" (insert records 0..records-1), "run" (the workload mix)
    worker_index: int
    seed: int


StartSignal = tuple[Event, "Synchronized[float]"]  # set when the phase may start; start instant


@dataclass(frozen=True)
class WorkerReport:
    worker_index: int
    totals: dict[str, TallySnapshot]
    requests: dict[str, int]  # every request sent (warm-up and drain too), by operation
    outside_window: int  # completions not in `totals` (warm-up, after the end)
    cpu_s: float  # user + system CPU of this process while it generated load
    wall_s: float


class Engine:
    """The workload's operations; one Engine per worker, shared by its tasks."""

    def __init__(self, plan: WorkerPlan, client: DynamoClient, recorder: Recorder,
                 start_perf: float, rng: random.Random) -> None:  # one Engine per phase
        s = plan.settings
        self._client = client
        self._recorder = recorder
        self._start = start_perf
        self._rng = rng
        self._records = s.records
        self._query_items = s.query_items
        self._builder = RequestBuilder(s.table, plan.schema, s.item_size_bytes, s.items_per_key,
                                       s.consistent_read, rng)
        self._chooser = make_chooser(s.key_distribution, rng)
        self._inserted: list[int] = []  # acknowledged inserts, oldest first
        # Worker w owns record numbers w, w + W, w + 2W ... for loading and for inserts.
        self._own = (plan.worker_index, s.workers)
        self._next_load = plan.worker_index
        self._inserts_sent = 0
        ops: dict[str, Callable[[float], Awaitable[None]]] = {
            "read": self.read, "update": self.update, "insert": self.insert,
            "query": self.query, "rmw": self.rmw, "put": self.put}
        shares = s.spec.mix
        total = sum(share for _, share in shares)
        cumulative, acc = [], 0.0
        for op, share in shares:
            acc += share / total
            cumulative.append((acc, ops[op]))
        self._mix = cumulative

    # -- plumbing --------------------------------------------------------------------------
    async def _call(self, operation: str, body: bytes) -> Reply:
        self._recorder.requests[operation] += 1
        return await self._client.call(operation, body)

    def _done(self, op: str, started: float, reply: Reply, now: float | None = None) -> float:
        now = perf_counter() if now is None else now
        self._recorder.record(op, now - self._start, int((now - started) * 1_000_000),
                              reply.error, reply.transport)
        return now

    def _existing(self) -> int:
        """A record that exists: a loaded one or one of this worker's acknowledged inserts."""
        index = self._chooser.choose(self._records + len(self._inserted))
        return index if index < self._records else self._inserted[index - self._records]

    def _new_record(self) -> int:
        worker, workers = self._own
        record = self._records + worker + self._inserts_sent * workers
        self._inserts_sent += 1
        return record

    def next_load_record(self) -> int | None:
        record = self._next_load
        if record >= self._records:
            return None
        self._next_load += self._own[1]
        return record

    # -- operations ------------------------------------------------------------------------
    async def run_one(self, started: float) -> None:
        """One operation of the mix; latency counts from `started` (the intended start)."""
        u = self._rng.random()
        for threshold, op in self._mix:
            if u < threshold:
                await op(started)
                return
        await self._mix[-1][1](started)  # u within rounding of 1.0

    async def read(self, started: float) -> None:
        reply = await self._call("GetItem", self._builder.get_item(self._existing()))
        self._done("read", started, reply)

    async def update(self, started: float) -> None:
        reply = await self._call("UpdateItem", self._builder.update_item(self._existing()))
        self._done("update", started, reply)

    async def put(self, started: float) -> None:
        record = self._chooser.choose(self._records)
        reply = await self._call("PutItem", self._builder.put_item(record))
        self._done("put", started, reply)

    async def insert(self, started: float, record: int | None = None) -> None:
        record = self._new_record() if record is None else record
        reply = await self._call("PutItem", self._builder.put_item(record))
        self._done("insert", started, reply)
        if reply.ok and record >= self._records:
            self._inserted.append(record)

    async def query(self, started: float) -> None:
        limit = self._rng.randint(1, self._query_items)
        reply = await self._call("Query", self._builder.query(self._existing(), limit))
        self._done("query", started, reply)

    async def rmw(self, started: float) -> None:
        """GetItem, then UpdateItem only if the version is still the one read (YCSB F)."""
        record = self._existing()
        read = await self._call("GetItem", self._builder.get_item(record))
        read_done = self._done("rmw-read", started, read)
        if not read.ok:
            self._done("rmw", started, read, read_done)
            return
        body = self._builder.conditional_update(record, version_of(read.body))
        write = await self._call("UpdateItem", body)
        finished = self._done("rmw-update", read_done, write)
        self._done("rmw", started, write, finished)  # same instant: both in or out of the window


class Pacer:
    """Intended start times for a target rate (None: open throttle).

    Latency is measured from the intended start, so when the endpoint (or the bench) falls
    behind, the queueing shows up in the latency instead of being silently omitted.
    """

    def __init__(self, start_perf: float, rate_ops_s: float | None) -> None:
        self._start = start_perf
        self._interval_s = None if rate_ops_s is None else 1.0 / rate_ops_s
        self._sent = 0

    def next_start(self) -> float | None:
        if self._interval_s is None:
            return None
        slot = self._start + self._sent * self._interval_s
        self._sent += 1
        return slot


async def _run_task(engine: Engine, pacer: Pacer, end_perf: float, max_ops: int) -> None:
    for _ in range(max_ops):
        intended = pacer.next_start()
        if intended is None:
            started = perf_counter()
        else:
            delay_s = intended - perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            started = intended
        if started >= end_perf or perf_counter() >= end_perf:
            return
        await engine.run_one(started)


async def _load_task(engine: Engine, max_ops: int) -> None:
    for _ in range(max_ops):
        record = engine.next_load_record()
        if record is None:
            return
        await engine.insert(perf_counter(), record)


async def _ticker(recorder: Recorder, queue: Queue[Any], index: int, phase: str,
                  start_perf: float) -> None:
    for second in range(1, _MAX_TICKS):
        await asyncio.sleep(max(0.0, start_perf + second + _TICK_SLACK_S - perf_counter()))
        ticks = recorder.take_seconds(before=second)
        if ticks:
            queue.put(("tick", index, phase, ticks))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _generate(plan: WorkerPlan, phase: str, client: DynamoClient, queue: Queue[Any],
                    start_perf: float) -> WorkerReport:
    s = plan.settings
    loading = phase == "load"
    operations = ("insert",) if loading else s.spec.recorded_operations
    top_level = ("insert",) if loading else s.spec.operations
    end_s = None if loading else s.warmup_s + s.duration_s
    recorder = Recorder(operations, 0.0 if loading else s.warmup_s, end_s, top_level)
    rng = random.Random(f"{plan.seed}:{phase}:{plan.worker_index}")
    engine = Engine(plan, client, recorder, start_perf, rng)
    cpu0, wall0 = _cpu_s(), perf_counter()
    ticker = asyncio.create_task(_ticker(recorder, queue, plan.worker_index, phase, start_perf))
    if loading:
        jobs = [_load_task(engine, s.records) for _ in range(s.connections)]
    else:
        rate = None if s.rate_ops_s is None else s.rate_ops_s / s.workers
        pacer = Pacer(start_perf, rate)
        # An op takes at least a microsecond: a bound no real run reaches.
        max_ops = int((s.duration_s + s.warmup_s + 1) * 1_000_000)
        jobs = [_run_task(engine, pacer, start_perf + end_s, max_ops)
                for _ in range(s.connections)]
    await asyncio.gather(*jobs)
    ticker.cancel()
    cpu_s, wall_s = _cpu_s() - cpu0, perf_counter() - wall0
    final = recorder.take_seconds()
    if final:
        queue.put(("tick", plan.worker_index, phase, final))
    return WorkerReport(plan.worker_index, recorder.total_snapshots(), dict(recorder.requests),
                        recorder.outside_window, cpu_s, wall_s)


async def _worker(plan: WorkerPlan, queue: Queue[Any], signals: list[StartSignal]) -> None:
    s = plan.settings
    headers = make_header_source(s.endpoint, s.region, s.sign)
    async with DynamoClient(s.endpoint, headers, s.connections, s.timeout_s) as client:
        for phase, (start_event, start_at) in zip(plan.phases, signals):
            # A full collection walks every object the worker holds: 13-14 ms, twice in a 10 s
            # run at 4,700 GetItem/s, a stall of every connection that the latencies would
            # record as the server's. Frozen before the phase starts, what exists now is not
            # walked again: 0.3 ms (docs/performance.md, change 17).
            gc.collect()
            gc.freeze()
            queue.put(("ready", plan.worker_index, phase))
            # Blocking here is fine: nothing else runs on this loop between phases.
            if not start_event.wait(_START_WAIT_S):
                raise TimeoutError(f"no start signal for the {phase} phase")
            start_perf = perf_counter() + (start_at.value - time.time())
            await asyncio.sleep(max(0.0, start_perf - perf_counter()))
            report = await _generate(plan, phase, client, queue, start_perf)
            # Report before closing the client: nobody needs to wait for its connections to close.
            queue.put(("done", plan.worker_index, phase, report))


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is not on Windows; asyncio's loop is slower but works
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def worker_main(plan: WorkerPlan, queue: Queue[Any], signals: list[StartSignal]) -> None:
    """Process entry point (must stay importable at module level for spawn)."""
    try:
        _run(_worker(plan, queue, signals))
    except BaseException:  # the parent must hear about any failure, not wait for a timeout
        queue.put(("error", plan.worker_index, traceback.format_exc()))
