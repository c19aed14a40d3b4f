"""One storage node: its RocksDB, its Raft groups, and one gRPC server for both services.

Groups (docs/cluster.md): every partition of the region's PartitionMap this node is a replica
of, with the partition's replicas as voters, plus `meta` when the node is a meta voter (the first
node by id of each AZ). A group is bootstrapped on first start and recovered from the DB later
(add_group does both). The server binds only after every group is recovered, so a node whose port
accepts connections can serve.

The node's wall clock is `dynalab.links.ClockSkew` (the chaos skew file is honoured by every
wall-clock reading: command stamps and stream trimming). A background task trims the change
records of every hosted partition past the stream retention, about once a second.
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from dynalab.links import ClockSkew, connect_address, load_plan
from dynalab.ring import Partition, PartitionMap, RingSnapshot, meta_voters
from dynalab.topology import NodeSpec, Topology
from node import streams
from node.items import ItemMachine
from node.logstore import RocksLogEngine
from node.machine import NodeMachine
from dynalab.ring import META_GROUP
from node.meta import MetaMachine
from node.raft_codec import RaftCodec
from node.raft_transport import GrpcRaftTransport, TransportConfig
from node.service import ServiceConfig, StatsSources, StorageService
from node.statedb import COLUMN_FAMILIES, StateDB
from proto import storage_pb2_grpc
from replication.driver import DriverConfig, RaftDriver
from replication.raft import Message, RaftConfig

__all__ = ["NodeConfig", "StorageNode", "node_partitions", "db_path"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    # Idle cost (docs/performance.md): a coarser tick with the same election timeout in ms.
    # At 250 ms ticks, E = 4 keeps the timeout at 1-2 s; heartbeats every tick (250 ms, was
    # 200 ms) so that all groups' heartbeats to a peer leave together, one batch per tick.
    tick_ms: int = 250
    election_ticks: int = 4  # election timeout 1-2 s at 250 ms ticks
    heartbeat_ticks: int = 1
    # Quiescence (replication/driver.py): a group idle for an election timeout (1 s) stops
    # ticking and heartbeating. Node-level liveness for its followers: a ping to every peer
    # every 2 ticks (500 ms; it rides in a batch going there anyway when there is one), a peer
    # dead after 4 ticks (1 s) without one (0: those defaults, derived from election_ticks).
    # quiesce_after_ticks = 0 turns quiescence (and the pings) off.
    quiesce_after_ticks: int = 4
    liveness_ping_ticks: int = 0
    liveness_timeout_ticks: int = 0
    compact_after_entries: int = 10_000
    # A BatchWrite may be 16 MB (DynamoDB's request limit) and is one log entry, which a raft
    # batch carries whole on top of up to its 4 MB of other messages; Execute batches from
    # routers (up to 64 MB, router/nodes.py) arrive on the same server.
    max_receive_bytes: int = 64 << 20
    service: ServiceConfig = ServiceConfig()
    stream_retention_s: float = streams.DEFAULT_RETENTION_S


def node_partitions(topology: Topology, node_id: str) -> dict[str, Partition]:
    """The partitions of the node's region that it holds a replica of, by group id."""
    region = topology.node(node_id).region
    pmap = PartitionMap.build(RingSnapshot.for_region(topology, region), topology)
    return {p.id: p for p in pmap.partitions if node_id in p.replicas}


def db_path(data_dir: Path, node_id: str) -> Path:
    return data_dir / "nodes" / node_id / "db"


class StorageNode:
    def __init__(self, topology: Topology, node_id: str, data_dir: Path,
                 config: NodeConfig = NodeConfig(), seed: int | None = None) -> None:
        self.spec: NodeSpec = topology.node(node_id)
        if self.spec.grpc_port == 0:
            raise ValueError(f"node {node_id} has no grpc_port: topology.json must be resolved")
        self._config = config
        self._rng = random.Random(seed)
        self.partitions = node_partitions(topology, node_id)
        self.groups: dict[str, tuple[str, ...]] = {g: p.replicas
                                                   for g, p in self.partitions.items()}
        voters = meta_voters(topology, self.spec.region)
        if node_id in voters:
            self.groups[META_GROUP] = voters
        path = db_path(data_dir, node_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = RocksLogEngine(path, extra_column_families=COLUMN_FAMILIES)
        self.db = StateDB(self.engine)
        self.clock = ClockSkew(data_dir, node_id)
        self.machine = NodeMachine(ItemMachine(self.db, self.partitions, self.spec.region),
                                   MetaMachine(self.db))
        self.transport = self._make_transport(topology, Path(data_dir))
        self.driver = self._make_driver()
        self.service = StorageService(self.spec, self.driver, self.machine,
                                      frozenset(self.groups), config.service, self.clock.now_ms,
                                      self._stats_sources())
        self._watcher: asyncio.Task[None] | None = None
        self._trimmer: asyncio.Task[None] | None = None

    def _make_transport(self, topology: Topology, data_dir: Path) -> GrpcRaftTransport[Message]:
        region = topology.region(self.spec.region)
        # Through the chaos layer's proxy for (our AZ, peer) when chaos is on (docs/cluster.md).
        plan = load_plan(data_dir)
        peers = {n.id: connect_address(topology, plan, self.spec.id, n.id)
                 for n in region.nodes if n.id != self.spec.id}
        return GrpcRaftTransport(
            self.spec.id, f"{self.spec.host}:{self.spec.grpc_port}", peers, RaftCodec(),
            random.Random(self._rng.getrandbits(64)),
            TransportConfig(max_receive_bytes=self._config.max_receive_bytes),
            # looked up when the server starts: the service needs the driver, built later
            services=[lambda server: storage_pb2_grpc.add_StorageServicer_to_server(
                self.service, server)])

    def _stats_sources(self) -> StatsSources:
        """The Stats counters of what this node built around the driver (read when asked)."""
        return StatsSources(raft_peers=self.transport.stats, logstore=lambda: self.engine.stats,
                            statedb_writes=lambda: self.db.writes)

    def _make_driver(self) -> RaftDriver:
        cfg = self._config
        raft = RaftConfig(election_ticks=cfg.election_ticks, heartbeat_ticks=cfg.heartbeat_ticks,
                          quiesce_after_ticks=cfg.quiesce_after_ticks)
        return RaftDriver(self.spec.id, self.transport, self.engine, self.machine,
                          random.Random(self._rng.getrandbits(64)),
                          DriverConfig(tick_interval_ms=cfg.tick_ms, raft=raft,
                                       compact_after_entries=cfg.compact_after_entries,
                                       liveness_ping_ticks=cfg.liveness_ping_ticks,
                                       liveness_timeout_ticks=cfg.liveness_timeout_ticks))

    async def start(self) -> None:
        for group, voters in self.groups.items():  # recovers (or bootstraps) before binding
            self.driver.add_group(group, voters)
        await self.driver.start()
        self._watcher = asyncio.create_task(self._watch_leaders(), name="leader-watch")
        self._trimmer = asyncio.create_task(self._trim_streams(), name="stream-trim")
        log.info("node %s serving on %s:%d (%d groups%s)", self.spec.id, self.spec.host,
                 self.transport.port, len(self.groups),
                 ", meta voter" if META_GROUP in self.groups else "")

    async def stop(self) -> None:
        tasks = [t for t in (self._watcher, self._trimmer) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.driver.close()  # also closes the transport and its server
        self.db.close()
        self.engine.close()

    async def _watch_leaders(self) -> None:
        """One log line per leadership change seen by this replica (polled about once a second:
        a log line, not a decision, so it need not wake the node every tick)."""
        known: dict[str, str | None] = {}
        while True:
            for group in self.groups:
                leader = self.driver.leader(group)
                if known.get(group, "?") != leader:
                    known[group] = leader
                    log.info("leader %s: %s%s", group, leader or "none",
                             " (this node)" if leader == self.spec.id else "")
            await asyncio.sleep(max(self._config.tick_ms, 1000) / 1000)

    async def _trim_streams(self) -> None:
        """Drop change records older than the retention, on this replica, about once a second
        (more often for a retention of a few seconds, so tests need not wait long)."""
        retention_ms = int(self._config.stream_retention_s * 1000)
        interval_s = min(1.0, max(0.05, self._config.stream_retention_s / 4))
        items = self.machine.items
        while True:
            await asyncio.sleep(interval_s)
            cutoff_ms = self.clock.now_ms() - retention_ms
            for group in self.partitions:
                try:
                    removed = items.streams.trim(group, cutoff_ms)
                except Exception:  # noqa: BLE001 - a failed round must not end trimming
                    log.exception("trimming the streams of %s failed", group)
                    continue
                if removed:
                    log.debug("group %s: trimmed %d change records", group, removed)
