"""Real storage-node processes on 127.0.0.1 and a small Storage.Execute client for them.

`NodeCluster` writes a one-region topology (3 AZs x 1 node) into a temp data dir, starts each
node as `python -m node` in its own process group, and ends them by process group only.
`StorageClient` keeps one Execute stream per node and matches answers by request_id;
`call_leader` follows NotLeader hints and retries Unavailable within a deadline.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import grpc
import grpc.aio
import orjson

from deploy.specs import grpc_env
from dynalab import layout, writes
from dynalab.ring import Partition, PartitionMap, RingSnapshot
from dynalab.topology import AZ, NodeSpec, Region, RouterSpec, Topology, topology_to_dict
from dynalab.values import Item, KeySchema
from proto import storage_pb2, storage_pb2_grpc

REGION = "us-east-1"
NODE_IDS = ("n1", "n2", "n3")
REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- processes

def free_ports(count: int) -> list[int]:
    """Ports the OS had free just now (held together so they differ)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_topology(vnodes: int = 4) -> Topology:
    ports = free_ports(len(NODE_IDS))
    azs = tuple(AZ(f"{REGION}{suffix}", (NodeSpec(node, REGION, f"{REGION}{suffix}",
                                                  "127.0.0.1", port),))
                for suffix, node, port in zip("abc", NODE_IDS, ports))
    router = RouterSpec("r1", REGION, f"{REGION}a", "127.0.0.1", 0)
    return Topology((Region(REGION, azs, (router,)),), vnodes=vnodes)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str,
                     interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@dataclass
class NodeCluster:
    root: Path
    topology: Topology
    extra_args: tuple[str, ...] = ()
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        (self.root / "topology.json").write_bytes(orjson.dumps(topology_to_dict(self.topology)))
        ring = RingSnapshot.for_region(self.topology, REGION)
        self.pmap = PartitionMap.build(ring, self.topology)

    def address(self, node: str) -> str:
        spec = self.topology.node(node)
        return f"{spec.host}:{spec.grpc_port}"

    def log_path(self, node: str) -> Path:
        return self.root / "logs" / f"{node}.log"

    def start(self, node: str) -> None:
        with open(self.log_path(node), "ab") as out:
            self.procs[node] = subprocess.Popen(
                [sys.executable, "-m", "node", "--data-dir", str(self.root), "--id", node,
                 *self.extra_args],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **grpc_env()})  # gRPC set up as `dynalab up` sets it

    def start_all(self) -> None:
        for node in NODE_IDS:
            self.start(node)

    async def wait_serving(self, node: str, timeout_s: float = 20) -> None:
        async def ready() -> bool:
            proc = self.procs[node]
            if proc.poll() is not None:
                raise AssertionError(f"{node} exited with {proc.returncode}:\n{self.tail(node)}")
            spec = self.topology.node(node)
            with contextlib.suppress(OSError):
                with socket.create_connection((spec.host, spec.grpc_port), 0.2):
                    return True
            return False
        await wait_until(ready, timeout_s, f"{node} to accept connections")

    def kill9(self, node: str) -> None:
        proc = self.procs.pop(node)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def terminate(self, node: str, timeout_s: float = 15) -> int:
        """SIGTERM, then wait; SIGKILL only if it does not exit in time (and say so)."""
        proc = self.procs.pop(node)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise AssertionError(f"{node} ignored SIGTERM for {timeout_s}s")

    def stop_all(self) -> None:
        for node in list(self.procs):
            proc = self.procs.pop(node)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def tail(self, node: str, lines: int = 40) -> str:
        path = self.log_path(node)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def partition_of(self, key: Item, schema: KeySchema) -> Partition:
        return self.pmap.for_token(layout.item_token(key, schema))


@contextlib.asynccontextmanager
async def running_cluster(root: Path, *extra_args: str,
                          vnodes: int = 4) -> AsyncIterator[tuple[NodeCluster, StorageClient]]:
    cluster = NodeCluster(root, make_topology(vnodes), tuple(extra_args))
    client = StorageClient({n: cluster.address(n) for n in NODE_IDS})
    try:
        cluster.start_all()
        for node in NODE_IDS:
            await cluster.wait_serving(node)
        yield cluster, client
    finally:
        await client.close()
        cluster.stop_all()


@contextlib.contextmanager
def serving_cluster(root: Path, vnodes: int = 4) -> Iterator[NodeCluster]:
    """A node cluster, started and serving, for a module's fixture; stopped on the way out."""
    nodes = NodeCluster(root, make_topology(vnodes))
    try:
        nodes.start_all()

        async def serving() -> None:
            for node in NODE_IDS:
                await nodes.wait_serving(node)
        asyncio.run(serving())
        yield nodes
    finally:
        nodes.stop_all()


def run_scenario(cluster: NodeCluster, scenario: Callable[[StorageClient], Awaitable[None]],
                 timeout_s: float) -> None:
    """Run `scenario` with a fresh client of `cluster`, within `timeout_s`."""
    async def main() -> None:
        client = StorageClient({n: cluster.address(n) for n in NODE_IDS})
        try:
            await asyncio.wait_for(scenario(client), timeout_s)
        finally:
            await client.close()
    asyncio.run(main())


async def held_call(client: StorageClient, node: str, operation: str, partition: str,
                    body: dict[str, Any], wait_ms: int) -> asyncio.Task[Reply]:
    """A request `node` may hold up to `wait_ms` (a catalog watch, a long-polled StreamRead),
    answered in the background; requests sent after this returns go after it on the stream."""
    task = asyncio.create_task(client.call(node, operation, partition, body,
                                           timeout_s=wait_ms / 1000 + 10))
    await asyncio.sleep(0)  # the task queues its request before its first wait
    return task


async def execute_stat(client: StorageClient, node: str, name: str) -> int:
    """One counter of `node`'s Storage stream (Stats' "execute")."""
    reply = await client.call(node, "Stats", "", {})
    assert reply.ok, reply
    return int(reply.json()["execute"][name])


# ---------------------------------------------------------------------------- client

@dataclass(frozen=True)
class Reply:
    body: bytes = b""
    error_type: str = ""
    error_message: str = ""
    leader_hint: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_type

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else {}


class _Stream:
    """One Execute stream to one node; broken streams fail their requests with `Lost`."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 200)])
        self._queue: asyncio.Queue[storage_pb2.Request] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    async def call(self, operation: str, partition: str, body: Any,
                   timeout_s: float) -> Reply:
        if self._task is None or self._task.done():
            # A fresh queue per session: the dead session's request generator may still be
            # waiting on the old one, and would swallow what is put there.
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(self._queue))
        rid = next(self._ids)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._queue.put_nowait(storage_pb2.Request(request_id=rid, operation=operation,
                                                   partition=partition, body=orjson.dumps(body)))
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            return Reply(error_type="Timeout")
        finally:
            self._pending.pop(rid, None)

    @staticmethod
    async def _requests(queue: asyncio.Queue[storage_pb2.Request],
                        ) -> AsyncIterator[storage_pb2.RequestBatch]:
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            yield storage_pb2.RequestBatch(requests=batch)

    async def _run(self, queue: asyncio.Queue[storage_pb2.Request]) -> None:
        try:
            call = storage_pb2_grpc.StorageStub(self._channel).Execute(self._requests(queue))
            async for batch in call:
                for r in batch.responses:
                    fut = self._pending.get(r.request_id)
                    if fut is not None and not fut.done():
                        fut.set_result(Reply(r.body, r.error_type, r.error_message,
                                             r.leader_hint))
        except grpc.aio.AioRpcError:
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_result(Reply(error_type="Lost"))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._channel.close()


class StorageClient:
    def __init__(self, addresses: dict[str, str]) -> None:
        self._addresses = addresses
        self._streams: dict[str, _Stream] = {}
        self.leaders: dict[str, str] = {}

    async def call(self, node: str, operation: str, partition: str, body: Any,
                   timeout_s: float = 5) -> Reply:
        stream = self._streams.get(node)
        if stream is None:
            stream = self._streams[node] = _Stream(self._addresses[node])
        return await stream.call(operation, partition, body, timeout_s)

    async def reset(self, node: str) -> None:
        """Forget the stream to `node` (after it was killed)."""
        stream = self._streams.pop(node, None)
        if stream is not None:
            await stream.close()

    async def call_leader(self, group: str, operation: str, body: Any, *,
                          deadline_s: float = 20, replicas: tuple[str, ...] = NODE_IDS,
                          attempt_s: float = 2) -> tuple[str, Reply]:
        """(node that answered, its reply): follows hints, retries Unavailable/Lost/Timeout.
        Only for requests that may be repeated (unconditional puts, reads)."""
        end = time.monotonic() + deadline_s
        target = self.leaders.get(group, replicas[0])
        reply = Reply(error_type="NoAttempt")
        for attempt in range(1000):  # bounded twice: attempts and the deadline
            if time.monotonic() >= end:
                break
            reply = await self.call(target, operation, group, body, attempt_s)
            if reply.error_type == "NotLeader" and reply.leader_hint in replicas:
                target = reply.leader_hint
                continue
            if reply.error_type in ("NotLeader", "Unavailable", "Lost", "Timeout"):
                target = replicas[(replicas.index(target) + 1) % len(replicas)]
                await asyncio.sleep(min(0.2, 0.02 * (attempt + 1)))
                continue
            self.leaders[group] = target
            return target, reply
        raise AssertionError(f"no leader answered for {group}: last {reply}")

    async def close(self) -> None:
        for stream in self._streams.values():
            await stream.close()
        self._streams.clear()


# ---------------------------------------------------------------------------- request bodies

SCHEMA = KeySchema("pk", "S", "sk", "N")
TABLE_DEF = {
    "name": "things",
    "key_schema": [{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
    "attribute_definitions": [{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
    "billing_mode": "PAY_PER_REQUEST",
}


def put_body(table_id: str, item: Item, **extra: Any) -> dict[str, Any]:
    prepared = writes.prepare("PutItem", {"Item": item, **extra}, SCHEMA)
    return {"table": table_id, "write": orjson.loads(writes.encode(prepared))}


def update_body(table_id: str, key: Item, **request: Any) -> dict[str, Any]:
    prepared = writes.prepare("UpdateItem", {"Key": key, **request}, SCHEMA)
    return {"table": table_id, "write": orjson.loads(writes.encode(prepared))}


def get_body(table_id: str, key: Item, consistent: bool) -> dict[str, Any]:
    storage_key = layout.item_key(table_id, key, SCHEMA)
    return {"table": table_id, "key": base64.b64encode(storage_key).decode(),
            "consistent": consistent}


def range_body(table_id: str, low: bytes, high: bytes, **extra: Any) -> dict[str, Any]:
    return {"table": table_id, "low": base64.b64encode(low).decode(),
            "high": base64.b64encode(high).decode(), **extra}


def item(pk: str, sk: int, **attrs: str) -> Item:
    out: Item = {"pk": {"S": pk}, "sk": {"N": str(sk)}}
    out.update({name: {"S": value} for name, value in attrs.items()})
    return out


def key_of(it: Item) -> Item:
    return {"pk": it["pk"], "sk": it["sk"]}


# ---------------------------------------------------------------------------- scenarios

async def create_table(client: StorageClient, name: str) -> str:
    _, reply = await client.call_leader("meta", "Meta", {"op": "CreateTable", **TABLE_DEF,
                                                         "name": name})
    assert reply.ok, reply
    table_id: str = reply.json()["table"]["id"]
    _, reply = await client.call_leader("meta", "Meta", {"op": "SetStatus", "name": name,
                                                         "status": "ACTIVE"})
    assert reply.ok and reply.json()["table"]["status"] == "ACTIVE", reply
    return table_id


async def assert_replicas_agree(client: StorageClient, groups: list[str],
                                timeout_s: float = 20) -> dict[str, Any]:
    """Wait until every replica of every group reports the same applied index and digest."""
    seen: dict[str, Any] = {}

    async def agree() -> bool:
        for group in groups:
            answers = [await client.call(n, "Digest", group, {"group": group}) for n in NODE_IDS]
            if not all(a.ok for a in answers):
                return False
            bodies = {orjson.dumps(a.json()) for a in answers}
            seen[group] = [a.json() for a in answers]
            if len(bodies) != 1:
                return False
        return True
    try:
        await wait_until(agree, timeout_s, "replicas to agree", interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"replicas differ: {seen}") from None
    return seen


def all_groups(cluster: NodeCluster) -> list[str]:
    return [p.id for p in cluster.pmap.partitions] + ["meta"]
