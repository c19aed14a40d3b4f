"""The Storage gRPC service (proto/storage.proto): `Execute` and `Ping`, per docs/cluster.md.

Execute is one long-lived bidirectional stream per router. Every Request runs in its own task, so
a slow write (waiting for its commit) never holds up the reads behind it; answers are written
back as they complete, all the ones ready at that moment in one ResponseBatch.

Who serves what:
* Write / BatchWrite / DropTable / Meta writes: the group's leader proposes the command and
  answers with the state machine's result once the entry is applied here.
* Get / Range: `consistent` -> the leader only, at once under its lease, else after a ReadIndex
  round; otherwise any replica, from its applied state.
* ReplicaApply: like a write (one proposal for the batch of replicated changes).
* StreamRead: the leader reads a shard (table, group) from its applied state (docs/cluster.md).
  With `wait_ms` (the replicators' long poll), an empty page is held until a record of that
  shard is applied here, `wait_ms` passes, or this replica stops leading the group (then
  NotLeader, as for a catalog watch); then the page is read as without `wait_ms`. Waking costs
  the write path one dict lookup per shard that got records, and nothing for writes that make
  none.
* Digest (admin, for tests): {"applied", "digest", "streams_digest"} of a group on this
  replica (items and versions; change records).
* Stats (admin, for measurements): counters of this node since it started: "execute" (Storage
  stream messages and requests in and out, and the catalog watches and StreamReads held now),
  "driver" (RaftDriver.stats()), "raft" (per peer: the Raft transport's gRPC batches and
  messages sent and received), "leaders" (group -> the leader this replica knows), "logstore"
  (group commits written, and how many were synced) and "statedb_writes" (the state machines'
  RocksDB writes).
* Meta Catalog with `after_epoch` (a watch, the routers' and replicators' long poll): the meta
  leader holds it until its applied catalog epoch passes `after_epoch`, `wait_ms` passes, or it
  stops leading (then NotLeader, with the new leader as hint once known); the answer is the
  catalog, read linearizably as without `after_epoch`. Held watches cost no Raft traffic, so
  the meta group quiesces while they wait.
* TransferLeader (admin, for measurements and tests): {"to": node} asks this replica, the
  leader of `partition` (or "meta"), to hand the group to `to`; answers once the request is
  with Raft (the handover shows in Stats' "leaders").

Every item command is stamped with `now_ms` from the node's clock (wall clock plus the chaos
clock-skew offset) when the leader proposes it, so all replicas apply the same times.

Errors: `error_type` is the dynalab.errors class name; `NotLeader` + `leader_hint` when another
replica leads (empty hint: this node does not host the group); `Unavailable` when no leader is
known yet or the group cannot answer now (safe to retry); `ServerError` when a write's outcome is
unknown (it may still be applied: the router must not blindly repeat it).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Hashable, Mapping

import grpc
import orjson

from dynalab import layout
from dynalab.errors import (
    ConditionalCheckFailedException,
    DynalabError,
    ServerError,
    Unavailable,
    UnknownOperationException,
    ValidationException,
)
from dynalab.layout import KeyRange
from dynalab.topology import NodeSpec
from dynalab.values import item_size
from node import streams
from node.items import encode_command_raw, table_id
from node.machine import NodeMachine
from dynalab.ring import META_GROUP
from node.meta import META_WRITES, stamp_command
from node.raft_transport import PeerStats
from proto import storage_pb2, storage_pb2_grpc
from replication.driver import OutcomeUnknown, RaftDriver
from replication.raft import NotLeader, ProposalDropped

__all__ = ["StorageService", "ServiceConfig", "StatsSources", "NOT_LEADER", "UNAVAILABLE"]

log = logging.getLogger(__name__)

NOT_LEADER = "NotLeader"
UNAVAILABLE = "Unavailable"
_DEFAULT_PAGE_BYTES = 1 << 20  # a Range without max_bytes pages like DynamoDB's 1 MB
_MAX_RESPONSES_PER_BATCH = 512
# One write is one log entry that the Raft transport must carry whole; DynamoDB's largest request
# (BatchWriteItem) is 16 MB. Bigger would never fit a raft batch and would wedge the group.
_MAX_COMMAND_BYTES = 17 << 20
_DEFAULT_STREAM_RECORDS = 1000
_DEFAULT_STREAM_BYTES = 1 << 20
Clock = Callable[[], int]  # wall-clock milliseconds


def _system_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    write_timeout_ms: int = 10_000  # past it the outcome is unknown (the entry may still commit)
    read_timeout_ms: int = 3_000  # a ReadIndex round that takes longer: Unavailable, retry
    # Catalog watches: each is a task and a future on the meta leader; past the limit, new ones
    # are refused (Unavailable: the watcher backs off). A watch or a held StreamRead may ask to
    # be held at most max_watch_ms (more is a ValidationException).
    max_catalog_watches: int = 1024
    max_watch_ms: int = 60_000
    # Held StreamReads (one per shard, table and destination region a replicator ships to): past
    # the limit a read is answered at once, so its reader falls back to polling.
    max_held_stream_reads: int = 4096
    # A leader that lost a group answers its watches and held reads NotLeader; it waits up to
    # this long to learn the new leader first, so that the callers go straight to it.
    watch_leader_grace_ms: int = 1_000


@dataclass(frozen=True, slots=True)
class StatsSources:
    """The counters in the Stats answer that belong to the parts node/server.py builds around
    the driver (the driver keeps those parts private), each read when Stats is asked. The
    defaults, nothing counted, suit a service without them (tests)."""
    raft_peers: Callable[[], Mapping[str, PeerStats]] = lambda: {}  # the Raft transport's
    logstore: Callable[[], Mapping[str, int]] = lambda: {}  # the log engine's group commits
    statedb_writes: Callable[[], int] = lambda: 0  # the state DB's RocksDB writes


class _Redirect(Exception):
    """Answer NotLeader with this hint (possibly empty: the group is not hosted here)."""

    def __init__(self, hint: str) -> None:
        super().__init__(f"not the leader (try {hint or 'another replica'})")
        self.hint = hint


Handler = Callable[["StorageService", storage_pb2.Request, dict[str, Any]], Awaitable[bytes]]


class StorageService(storage_pb2_grpc.StorageServicer):
    def __init__(self, node: NodeSpec, driver: RaftDriver, machine: NodeMachine,
                 groups: frozenset[str], config: ServiceConfig = ServiceConfig(),
                 clock: Clock = _system_ms, stats: StatsSources = StatsSources()) -> None:
        self._node = node
        self._driver = driver
        self._machine = machine
        self._groups = groups  # the groups this node hosts (fixed while it runs)
        self._config = config
        self._clock = clock
        self._stats_sources = stats
        self._catalog_watches = _Watches(config.max_catalog_watches, "catalog watches")
        self._stream_reads = _Watches(config.max_held_stream_reads, "held stream reads")
        machine.meta.on_change(self._catalog_watches.notify)
        machine.items.on_records(self._records_applied)
        driver.on_leader_change(self._leader_changed)
        # Storage stream traffic (the Stats admin operation): gRPC messages and requests.
        self._batches_in = self._requests_in = self._batches_out = self._responses_out = 0

    # -- gRPC

    async def Ping(self, request: storage_pb2.PingRequest,
                   context: grpc.aio.ServicerContext) -> storage_pb2.PingReply:
        return storage_pb2.PingReply(node_id=self._node.id, region=self._node.region,
                                     az=self._node.az)

    async def Execute(self, request_iterator: AsyncIterator[storage_pb2.RequestBatch],
                      context: grpc.aio.ServicerContext) -> None:
        out: asyncio.Queue[storage_pb2.Response | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        reader = asyncio.create_task(self._read_requests(request_iterator, out, tasks))
        try:
            ended = False
            while not ended:
                first = await out.get()
                if first is None:
                    break
                batch = storage_pb2.ResponseBatch(responses=[first])
                while not out.empty() and len(batch.responses) < _MAX_RESPONSES_PER_BATCH:
                    more = out.get_nowait()
                    if more is None:
                        ended = True
                        break
                    batch.responses.append(more)
                await context.write(batch)
                self._batches_out += 1
                self._responses_out += len(batch.responses)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            log.debug("Execute stream closed while answering: %r", exc)  # the router went away
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    async def _read_requests(self, request_iterator: AsyncIterator[storage_pb2.RequestBatch],
                             out: asyncio.Queue[storage_pb2.Response | None],
                             tasks: set[asyncio.Task[None]]) -> None:
        try:
            async for batch in request_iterator:
                self._batches_in += 1
                self._requests_in += len(batch.requests)
                for request in batch.requests:
                    # Eventually consistent reads never wait: answer them here, without a task
                    # (a task per request was a visible share of a read's cost, performance.md).
                    answer = self._answer_now(request)
                    if answer is not None:
                        out.put_nowait(answer)
                        continue
                    task = asyncio.create_task(self._answer(request, out))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            # The router half-closed: finish what it asked, then end the stream.
            await asyncio.gather(*list(tasks), return_exceptions=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke: nobody is left to answer
            log.debug("Execute stream ended: %r", exc)
        out.put_nowait(None)

    async def _answer(self, request: storage_pb2.Request,
                      out: asyncio.Queue[storage_pb2.Response | None]) -> None:
        out.put_nowait(await self.handle(request))

    # -- one request

    def _answer_now(self, request: storage_pb2.Request) -> storage_pb2.Response | None:
        """The answer to a request that can be served without waiting (an eventually consistent
        Get or Range), or None: the caller runs `handle` in a task. Same answers as `handle`."""
        serve = _READS_NOW.get(request.operation)
        if serve is None:
            return None
        try:
            body = _parse(request.body)
            if body.get("consistent"):
                return None
            return storage_pb2.Response(request_id=request.request_id,
                                        body=serve(self, request, body))
        except Exception as exc:
            return _error_response(request.request_id, exc)

    async def handle(self, request: storage_pb2.Request) -> storage_pb2.Response:
        """Serve one request; never raises (every failure is an error answer)."""
        handler = _HANDLERS.get(request.operation)
        try:
            if handler is None:
                raise UnknownOperationException(f"Unknown operation: {request.operation}")
            body = _parse(request.body)
            answer = await handler(self, request, body)
            return storage_pb2.Response(request_id=request.request_id, body=answer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return _error_response(request.request_id, exc)

    # -- writes

    async def _write(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        group = request.partition
        self._require_partition(group)
        if len(request.body) > _MAX_COMMAND_BYTES:
            raise ValidationException(f"the request is larger than {_MAX_COMMAND_BYTES} bytes")
        self._check_command(group, request.operation, body)
        command = encode_command_raw(request.operation, request.body, body, self._clock())
        return await self._propose(group, command)

    def _check_command(self, group: str, op: str, body: dict[str, Any]) -> None:
        """Refuse what apply would refuse for its shape alone, before it costs a log entry."""
        items = self._machine.items
        if op == "Write":
            items.check_write(group, body)
        elif op == "BatchWrite":
            batch = body.get("writes")
            if not isinstance(batch, list) or not batch:
                raise ValidationException("BatchWrite needs a non-empty list of writes")
            for one in batch:
                items.check_write(group, one)
        elif op == "ReplicaApply":
            items.check_replica_apply(group, body)
        else:
            table_id(body)

    async def _meta(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        if META_GROUP not in self._groups:
            raise _Redirect("")
        op = body.get("op")
        if op == "Catalog":
            if "after_epoch" in body:
                await self._watch_catalog(body)
            await self._linearizable(META_GROUP)
            return orjson.dumps(self._machine.meta.catalog())
        if op not in META_WRITES:
            raise ValidationException(f"unknown Meta operation {op!r}")
        return await self._propose(META_GROUP, stamp_command(body, self._clock()))

    async def _watch_catalog(self, body: dict[str, Any]) -> None:
        """Wait until the applied catalog epoch passes `after_epoch`, `wait_ms` passes, or this
        replica stops leading the meta group. The caller then reads linearizably either way: on
        a timeout that read is what tells a leader cut off from its group (a quiesced leader
        notices nothing by itself) that it leads no more, so no watcher stays on it."""
        after = body["after_epoch"]
        if isinstance(after, bool) or not isinstance(after, int):
            raise ValidationException("after_epoch must be an integer")
        wait_ms = _count(body, "wait_ms", 0, self._config.max_watch_ms)
        self._require_leader(META_GROUP)
        meta, driver = self._machine.meta, self._driver
        await self._catalog_watches.wait(
            lambda: meta.epoch() > after or not driver.is_leader(META_GROUP), wait_ms)
        await self._await_leader_hint(META_GROUP, self._catalog_watches)

    async def _await_leader_hint(self, group: str, watches: _Watches,
                                 key: Hashable = None) -> None:
        """If this replica stepped down and the new leader is not known yet (a transfer: its
        first append is on its way), wait a moment for the hint rather than answer "no
        leader"."""
        driver = self._driver
        if not driver.is_leader(group) and driver.leader(group) is None:
            await watches.wait(lambda: driver.leader(group) is not None,
                               self._config.watch_leader_grace_ms, key)

    def _leader_changed(self, group: str) -> None:
        if group == META_GROUP:
            self._catalog_watches.notify()
        elif self._stream_reads.waiting:
            # Rare (elections, transfers): every held read checks its own group again.
            self._stream_reads.notify_all()

    def _records_applied(self, group: str, tables: set[str]) -> None:
        reads = self._stream_reads
        if reads.waiting:
            for table in tables:
                reads.notify((table, group))

    async def _propose(self, group: str, data: bytes) -> bytes:
        self._require_leader(group)
        timeout_s = self._config.write_timeout_ms / 1000
        try:
            # asyncio.timeout, not wait_for: no extra task per write (docs/performance.md).
            async with asyncio.timeout(timeout_s):
                result = await self._driver.propose(group, data)
        except (OutcomeUnknown, asyncio.TimeoutError) as exc:
            raise ServerError(f"the outcome of the write is unknown ({exc!r})") from None
        except ProposalDropped as exc:
            raise Unavailable(f"proposal refused for now: {exc}") from None
        if isinstance(result, Exception):  # the state machine's answer: a failed condition, ...
            raise result
        return orjson.dumps(result)

    # -- reads

    async def _get(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        key = self._get_key(request.partition, body)
        if body.get("consistent"):
            await self._linearizable(request.partition)
        return self._get_answer(key)

    def _get_now(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        return self._get_answer(self._get_key(request.partition, body))

    def _get_key(self, group: str, body: dict[str, Any]) -> bytes:
        self._require_partition(group)
        table, key = table_id(body), _b64(body, "key")
        items = self._machine.items
        if not key.startswith(layout.table_prefix(table)) or not items.owns(group, key):
            raise ValidationException(f"the key does not belong to partition {group}")
        return key

    def _get_answer(self, key: bytes) -> bytes:
        raw = self._machine.items.get(key)
        return b'{"Item":' + (raw if raw is not None else b"null") + b"}"

    async def _range(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        group = request.partition
        self._require_partition(group)
        table = table_id(body)
        wanted = KeyRange(_b64(body, "low"), _b64(body, "high"))
        if body.get("consistent"):
            await self._linearizable(group)
        return self._range_answer(group, table, wanted, body)

    def _range_now(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        group = request.partition
        self._require_partition(group)
        table = table_id(body)
        wanted = KeyRange(_b64(body, "low"), _b64(body, "high"))
        return self._range_answer(group, table, wanted, body)

    def _range_answer(self, group: str, table: str, wanted: KeyRange,
                      body: dict[str, Any]) -> bytes:
        reverse = bool(body.get("reverse"))
        ranges = [KeyRange(max(r.low, wanted.low), min(r.high, wanted.high))
                  for r in self._machine.items.ranges(group, table)]
        page = _Page(_positive(body, "limit"), _positive(body, "max_bytes") or _DEFAULT_PAGE_BYTES,
                     self._version_json if body.get("with_meta") is True else None)
        for key_range in (reversed(ranges) if reverse else ranges):
            if page.more:
                break
            self._machine.items.scan(key_range, page.visit, reverse)
        return page.encode()

    def _version_json(self, key: bytes) -> bytes:
        version = self._machine.items.version(key)
        return b"null" if version is None else orjson.dumps(version.to_wire())

    async def _stream_read(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        """A page of a shard's change records. The leader answers: every replica holds a correct
        prefix of the shard, but the leader's is the longest. With `wait_ms`, an empty page is
        held first (`_hold_stream_read`); without it (GetRecords) the answer is immediate."""
        group = request.partition
        self._require_partition(group)
        self._require_leader(group)
        table = table_id(body)
        raw_after = body.get("after")
        after = None if raw_after is None else streams.parse_seq(raw_after)
        limit = _count(body, "limit", _DEFAULT_STREAM_RECORDS, streams.MAX_READ_RECORDS)
        max_bytes = _positive(body, "max_bytes") or _DEFAULT_STREAM_BYTES
        wait_ms = _count(body, "wait_ms", 0, self._config.max_watch_ms)
        store = self._machine.items.streams
        page = store.read(table, group, after, limit, max_bytes)
        if page.records or not wait_ms or not limit or self._stream_reads.full:
            return page.encode()
        await self._hold_stream_read(table, group, after, wait_ms)
        return store.read(table, group, after, limit, max_bytes).encode()

    async def _hold_stream_read(self, table: str, group: str, after: int | None,
                                wait_ms: int) -> None:
        """Wait until the shard holds a record after `after`, `wait_ms` passes, or this replica
        stops leading the group (NotLeader). No Raft traffic: the group may stay quiesced."""
        store, driver, reads = self._machine.items.streams, self._driver, self._stream_reads
        key = (table, group)
        await reads.wait(lambda: not driver.is_leader(group)
                         or store.has_records_after(table, group, after), wait_ms, key)
        await self._await_leader_hint(group, reads, key)
        self._require_leader(group)

    async def _digest(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        group = body.get("group") or request.partition
        if group == META_GROUP and META_GROUP in self._groups:
            meta = self._machine.meta
            return orjson.dumps({"applied": meta.applied(), "digest": meta.digest()})
        self._require_partition(group)
        items = self._machine.items
        return orjson.dumps({"applied": items.applied(group), "digest": items.digest(group),
                             "streams_digest": items.streams_digest(group)})

    async def _stats(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        driver, sources = self._driver.stats(), self._stats_sources
        return orjson.dumps({
            "node": self._node.id,
            "execute": {"batches_in": self._batches_in, "requests_in": self._requests_in,
                        "batches_out": self._batches_out, "responses_out": self._responses_out,
                        "catalog_watches": self._catalog_watches.waiting,
                        "stream_reads_held": self._stream_reads.waiting},
            "driver": {**{f.name: getattr(driver, f.name) for f in dataclasses.fields(driver)
                          if f.name != "batches_sent"},
                       "batches_sent": dict(driver.batches_sent)},
            "raft": {peer: dataclasses.asdict(stats)
                     for peer, stats in sources.raft_peers().items()},
            "leaders": {group: self._driver.leader(group) for group in sorted(self._groups)},
            "logstore": dict(sources.logstore()),
            "statedb_writes": sources.statedb_writes(),
        })

    async def _transfer_leader(self, request: storage_pb2.Request, body: dict[str, Any]) -> bytes:
        group = request.partition
        if group not in self._groups:
            raise _Redirect("")
        to = body.get("to")
        if not isinstance(to, str) or not to:
            raise ValidationException("TransferLeader needs the node to hand the group to")
        self._require_leader(group)
        if to != self._node.id:
            try:
                await self._driver.transfer_leadership(group, to)
            except ValueError as exc:
                raise ValidationException(str(exc)) from None
        return b"{}"

    async def _linearizable(self, group: str) -> None:
        """Return once this replica's applied state may answer a linearizable read."""
        self._require_leader(group)
        if self._driver.lease_read_ok(group):
            return
        try:
            async with asyncio.timeout(self._config.read_timeout_ms / 1000):
                await self._driver.read_index(group)
        except asyncio.TimeoutError:
            raise Unavailable(f"no read index for {group} in time") from None

    # -- checks

    def _require_partition(self, group: str) -> None:
        if group == META_GROUP or group not in self._groups:
            raise _Redirect("")

    def _require_leader(self, group: str) -> None:
        if not self._driver.is_leader(group):
            raise NotLeader(self._driver.leader(group))


class _Watches:
    """Requests waiting for a condition that only changes when `notify` is called (the applied
    catalog epoch, a shard's records, leadership). Each waits under a key (the catalog's:
    None; a held StreamRead's: its (table, group)); `notify(key)` wakes that key's waiters (a
    dict lookup when there are none), `notify_all` every waiter; each checks its own condition
    again. At most `limit` wait at once. A waiter whose stream closes is cancelled with its
    task (Execute cancels a closed stream's tasks) and leaves nothing behind."""

    def __init__(self, limit: int, what: str) -> None:
        self._limit = limit
        self._what = what  # for the refusal when full
        self._waiting = 0
        self._futures: dict[Hashable, set[asyncio.Future[None]]] = {}

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def full(self) -> bool:
        return self._waiting >= self._limit

    def notify(self, key: Hashable = None) -> None:
        futures = self._futures.pop(key, None)
        if futures:
            _wake_all(futures)

    def notify_all(self) -> None:
        every, self._futures = self._futures, {}
        for futures in every.values():
            _wake_all(futures)

    async def wait(self, done: Callable[[], bool], timeout_ms: int,
                   key: Hashable = None) -> None:
        """Return once `done()` or after `timeout_ms` (Unavailable when full)."""
        if self.full:
            raise Unavailable(f"this node already holds {self._limit} {self._what}")
        self._waiting += 1
        loop = asyncio.get_running_loop()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_ms / 1000):
                    while not done():
                        # One future per waiter: cancelling one waiter must not cancel a
                        # future the others await.
                        future = loop.create_future()
                        self._futures.setdefault(key, set()).add(future)
                        try:
                            await future
                        finally:
                            self._discard(key, future)
        finally:
            self._waiting -= 1

    def _discard(self, key: Hashable, future: asyncio.Future[None]) -> None:
        futures = self._futures.get(key)
        if futures is not None:
            futures.discard(future)
            if not futures:  # leave no key behind: every shard ever read would stay
                del self._futures[key]


def _wake_all(futures: set[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


class _Page:
    """A Range page: stops after `limit` items or once their sizes reach `max_bytes` (the item
    that crosses it included), then looks at one more item only to tell `more`. With
    `meta_of` (Range's `with_meta`), each element also carries the item's hidden version."""

    def __init__(self, limit: int | None, max_bytes: int,
                 meta_of: Callable[[bytes], bytes] | None = None) -> None:
        self._limit = limit
        self._max_bytes = max_bytes
        self._meta_of = meta_of
        self._parts: list[bytes] = []
        self._bytes = 0
        self._full = False
        self.more = False

    def visit(self, key: bytes, value: bytes) -> bool:
        if self._full:
            self.more = True
            return False
        meta = b"" if self._meta_of is None else b"," + self._meta_of(key)
        self._parts.append(b'["' + base64.b64encode(key) + b'",' + value + meta + b"]")
        self._bytes += item_size(orjson.loads(value))
        self._full = ((self._limit is not None and len(self._parts) >= self._limit)
                      or self._bytes >= self._max_bytes)
        return True

    def encode(self) -> bytes:
        more = b"true" if self.more else b"false"
        return (b'{"Items":[' + b",".join(self._parts) + b'],"more":' + more + b',"bytes":'
                + str(self._bytes).encode() + b"}")


# ---------------------------------------------------------------------------- helpers

def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise ValidationException("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ValidationException("the request body must be a JSON object")
    return body


def _b64(body: dict[str, Any], name: str) -> bytes:
    raw = body.get(name)
    if not isinstance(raw, str):
        raise ValidationException(f"{name} must be a base64 string")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise ValidationException(f"{name} is not valid base64") from None


def _positive(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationException(f"{name} must be a positive integer")
    return value


def _count(body: Mapping[str, Any], name: str, default: int, most: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise ValidationException(f"{name} must be an integer from 0 to {most}")
    return value


def _error_response(request_id: int, exc: BaseException) -> storage_pb2.Response:
    if isinstance(exc, _Redirect):
        return storage_pb2.Response(request_id=request_id, error_type=NOT_LEADER,
                                    error_message=str(exc), leader_hint=exc.hint)
    if isinstance(exc, NotLeader):
        if exc.leader_id is None:  # nobody leads yet: retry later
            return storage_pb2.Response(request_id=request_id, error_type=UNAVAILABLE,
                                        error_message="no leader yet")
        return storage_pb2.Response(request_id=request_id, error_type=NOT_LEADER,
                                    error_message=str(exc), leader_hint=exc.leader_id)
    if isinstance(exc, ConditionalCheckFailedException):
        body = orjson.dumps({"Item": exc.item}) if exc.item is not None else b""
        return storage_pb2.Response(request_id=request_id, error_type=type(exc).__name__,
                                    error_message=exc.message, body=body)
    if isinstance(exc, Unavailable):
        return storage_pb2.Response(request_id=request_id, error_type=UNAVAILABLE,
                                    error_message=exc.message)
    if isinstance(exc, DynalabError):
        return storage_pb2.Response(request_id=request_id, error_type=type(exc).__name__,
                                    error_message=exc.message)
    if isinstance(exc, (KeyError, RuntimeError)):  # group removed / driver stopped meanwhile
        return storage_pb2.Response(request_id=request_id, error_type=UNAVAILABLE,
                                    error_message=repr(exc))
    log.exception("request %d failed", request_id, exc_info=exc)
    return storage_pb2.Response(request_id=request_id, error_type=ServerError.__name__,
                                error_message=repr(exc))


_READS_NOW: dict[str, Callable[[StorageService, storage_pb2.Request, dict[str, Any]], bytes]] = {
    "Get": StorageService._get_now,
    "Range": StorageService._range_now,
}

_HANDLERS: dict[str, Handler] = {
    "Write": StorageService._write,
    "BatchWrite": StorageService._write,
    "DropTable": StorageService._write,
    "ReplicaApply": StorageService._write,
    "StreamRead": StorageService._stream_read,
    "Get": StorageService._get,
    "Range": StorageService._range,
    "Meta": StorageService._meta,
    "Digest": StorageService._digest,
    "Stats": StorageService._stats,
    "TransferLeader": StorageService._transfer_leader,
}
