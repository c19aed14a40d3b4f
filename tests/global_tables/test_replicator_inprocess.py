"""The replicator's logic against two in-process regions (fake nodes, real gRPC between the two
replicators): both directions, LWW convergence of concurrent writers, no echo, tombstones,
kill -9 resume from checkpoints, a link that is down then back, backfill of a new replica, and
the lag file."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from pathlib import Path
from typing import Any
from unittest import mock

from chaos.checkers import CandidateWrite, check_convergence
from replication.replicator.checkpoints import CheckpointStore
from replication.replicator.peer import PeerLink
from replication.replicator.process import checkpoint_path, lag_path
from replication.replicator.region import REPLICA_PREFIX, SOURCE_PREFIX
from router.catalog import WatchConfig
from tests.global_tables.inprocess import A, B, FAST, Pair, eventually, run

TABLE = "orders"


def _item(key: str, value: str) -> dict[str, Any]:
    return {"pk": {"S": key}, "v": {"S": value}}


def _key(key: str) -> dict[str, Any]:
    return {"pk": {"S": key}}


def _global(pair: Pair, name: str = TABLE) -> None:
    for region in pair.regions.values():
        region.add_table(name, [A, B])


def test_changes_flow_both_ways_without_echo(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        _global(pair)
        await pair.start_all()
        try:
            a, b = pair.regions[A], pair.regions[B]
            for i in range(30):
                a.put(TABLE, _item(f"a{i}", "from-a"))
                b.put(TABLE, _item(f"b{i}", "from-b"))
            await eventually(lambda: a.contents(TABLE) == b.contents(TABLE)
                             and len(a.contents(TABLE)) == 60, "both regions hold all 60 items")
            # Applied changes carry the remote origin, so they are not shipped back: each
            # region's stream has its 30 own records plus the 30 applied ones, nothing more.
            await asyncio.sleep(0.3)
            for region in (a, b):
                records = [r for s in region.streams.values() for r in s]
                assert len(records) == 60
            assert a.version(TABLE, _key("b3")) == b.version(TABLE, _key("b3"))
            assert a.version(TABLE, _key("b3")).region == B  # type: ignore[union-attr]
        finally:
            await pair.stop_all()
    run(scenario)


def test_concurrent_writers_converge_to_the_greatest_version(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        _global(pair)
        pair.regions[B].clock_offset_ms = -5  # near-ties: the logical part and region matter
        await pair.start_all()
        rnd = random.Random(7)
        candidates: dict[str, list[CandidateWrite]] = {}
        try:
            for step in range(300):
                name = rnd.choice([A, B])
                key = f"k{rnd.randrange(12)}"
                region = pair.regions[name]
                if rnd.random() < 0.2:
                    version = region.delete(TABLE, _key(key))
                    value = None
                else:
                    value = _item(key, f"{name}-{step}")
                    version = region.put(TABLE, value)
                candidates.setdefault(key, []).append(
                    CandidateWrite(value, (version.ts.wall_ms, version.ts.logical), name))
                if step % 25 == 0:
                    await asyncio.sleep(0.01)  # let some replication interleave with writes

            def converged() -> bool:
                return pair.regions[A].contents(TABLE) == pair.regions[B].contents(TABLE)
            await eventually(converged, "identical tables", 15)
            report = check_convergence({n: r.contents(TABLE) for n, r in pair.regions.items()},
                                       candidates)
            assert report.ok, report.summary()
        finally:
            await pair.stop_all()
    run(scenario)


def test_a_delete_is_not_undone_by_an_older_put(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        _global(pair)
        a, b = pair.regions[A], pair.regions[B]
        b.clock_offset_ms = -10_000  # B's put is older than A's delete
        old_put = b.put(TABLE, _item("x", "old"))
        delete = a.delete(TABLE, _key("x"))
        assert delete > old_put
        await pair.start_all()
        try:
            await eventually(lambda: a.version(TABLE, _key("x")) == b.version(TABLE, _key("x"))
                             == delete, "both hold the tombstone")
            assert a.get(TABLE, _key("x")) is None and b.get(TABLE, _key("x")) is None
        finally:
            await pair.stop_all()
    run(scenario)


def test_kill_nine_resumes_from_the_checkpoint_and_loses_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        _global(pair)
        await pair.start_all()
        a, b = pair.regions[A], pair.regions[B]
        try:
            for i in range(100):
                a.put(TABLE, _item(f"k{i}", "one"))
            await eventually(lambda: len(b.contents(TABLE)) == 100, "the first 100 items")
            await asyncio.sleep(0.2)  # a checkpoint flush
            saved = json.loads(checkpoint_path(tmp_path, A).read_text())
            assert saved["cursors"][B], saved
            await pair.kill(A)
            for i in range(100, 200):  # written while A's replicator is dead
                a.put(TABLE, _item(f"k{i}", "two"))
            applies_before = len(b.calls_of("ReplicaApply"))
            await pair.start(A)
            await eventually(lambda: a.contents(TABLE) == b.contents(TABLE)
                             and len(b.contents(TABLE)) == 200, "all 200 items in B")
            # It resumed near where it stopped: it did not re-ship the first 100 from scratch.
            reshipped = sum(len(c.body["changes"]) for c in b.calls_of("ReplicaApply")
                            [applies_before:])
            assert reshipped < 200, reshipped
        finally:
            await pair.stop_all()
    run(scenario)


def test_the_flusher_writes_once_after_the_checkpoints_move_and_never_while_idle(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        # A global table (so that reconcile keeps its cursors), but B's replicator is down:
        # nothing is acknowledged, so only this test moves a cursor.
        table_id = pair.regions[A].add_table(TABLE, [A, B])
        replicator = await pair.start(A)
        store, path = replicator.checkpoints, checkpoint_path(tmp_path, A)
        shard = replicator.local.shards()[0].id
        # Long enough for several flushes, were the flusher on a timer.
        idle_s = 5 * pair.config.checkpoint_flush_ms / 1000
        try:
            with mock.patch.object(store, "flush", wraps=store.flush) as flush:
                await asyncio.sleep(idle_s)  # an observation window, not a wait for a condition
                assert flush.call_count == 0 and not path.exists()
                for n in range(1, 4):  # a burst of moves: one write for all of them
                    store.advance(B, table_id, shard, f"{n:021d}")
                await eventually(lambda: flush.call_count == 1 and not store.dirty,
                                 "the write after the moves", 5)
                assert CheckpointStore(path).get(B, table_id, shard) == f"{3:021d}"
                await asyncio.sleep(idle_s)
                assert flush.call_count == 1
                store.advance(B, table_id, shard, f"{4:021d}")  # a later move wakes it again
                await eventually(lambda: flush.call_count == 2 and not store.dirty,
                                 "the write after the next move", 5)
                assert CheckpointStore(path).get(B, table_id, shard) == f"{4:021d}"
        finally:
            await pair.stop_all()
    run(scenario)


def test_a_link_down_then_back_delivers_everything_and_reports_pending(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        _global(pair)
        await pair.start(A)  # B's replicator is not there: A's link to it is down
        a, b = pair.regions[A], pair.regions[B]
        try:
            for i in range(40):
                a.put(TABLE, _item(f"k{i}", "v"))
            replicator = pair.replicators[A]

            def pending() -> bool:
                view = replicator.status()["pairs"][f"{A}->{B}"]
                return view["pending_records"] == 40 and not view["connected"] \
                    and view["oldest_unapplied_age_ms"] is not None
            await eventually(pending, "40 records pending for B")
            assert b.contents(TABLE) == {}
            await pair.start(B)
            await eventually(lambda: len(b.contents(TABLE)) == 40, "B catches up")
            await eventually(lambda: replicator.status()["pairs"][f"{A}->{B}"]
                             ["pending_records"] == 0, "nothing pending")
            replicator.write_lag()
            written = json.loads(lag_path(tmp_path, A).read_text())
            view = written["pairs"][f"{A}->{B}"]
            assert view["connected"] and view["shipped_records"] == 40
            assert view["apply_lag_ms"]["count"] == 40 and view["apply_lag_ms"]["p99"] > 0
        finally:
            await pair.stop_all()
    run(scenario)


def test_failed_applies_are_retried(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        _global(pair)
        pair.regions[B].failing_applies = 5
        await pair.start_all()
        try:
            for i in range(10):
                pair.regions[A].put(TABLE, _item(f"k{i}", "v"))
            await eventually(lambda: len(pair.regions[B].contents(TABLE)) == 10, "retried")
            assert pair.regions[B].failing_applies == 0
        finally:
            await pair.stop_all()
    run(scenario)


def test_a_crashed_backfill_restarts_while_the_catalog_does_not_change(tmp_path: Path) -> None:
    """The catalog watch answers only on changes; reconciling on the cached catalog every
    reconcile_ms is what restarts a backfill that crashed half-way."""
    async def scenario() -> None:
        config = dataclasses.replace(FAST, catalog_watch=WatchConfig(wait_ms=60_000))
        pair = Pair.create(tmp_path, config)
        a, b = pair.regions[A], pair.regions[B]
        a.add_table(TABLE, [])
        for i in range(20):
            a.put(TABLE, _item(f"k{i}", "before"))
        a.catalog[TABLE].update(replicas=[A, B], settings={REPLICA_PREFIX + B: "CREATING",
                                                           SOURCE_PREFIX + B: A})
        b.add_table(TABLE, [A, B], {REPLICA_PREFIX + B: "CREATING"})
        a.crashing_scans = 3
        await pair.start_all()
        try:
            await eventually(lambda: a.catalog[TABLE]["settings"][REPLICA_PREFIX + B] == "ACTIVE",
                             "the backfill to finish after its crashes")
            assert a.crashing_scans == 0 and len(b.contents(TABLE)) == 20
        finally:
            await pair.stop_all()
    run(scenario)


def test_a_shipper_whose_reader_crashed_is_restarted(tmp_path: Path) -> None:
    """A reader that dies of a bug ends its shipper (its sender no longer waits on an empty
    queue for ever), so the next reconcile starts the shipper again and nothing is lost."""
    async def scenario() -> None:
        config = dataclasses.replace(FAST, catalog_watch=WatchConfig(wait_ms=60_000))
        pair = Pair.create(tmp_path, config)
        _global(pair)
        a, b = pair.regions[A], pair.regions[B]
        a.crashing_stream_reads = 3
        await pair.start_all()
        try:
            for i in range(10):
                a.put(TABLE, _item(f"k{i}", "v"))
            await eventually(lambda: len(b.contents(TABLE)) == 10,
                             "every write shipped after the readers' crashes")
            assert a.crashing_stream_reads == 0
        finally:
            await pair.stop_all()
    run(scenario)


def test_backfill_copies_existing_items_with_their_versions(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        a, b = pair.regions[A], pair.regions[B]
        a.add_table(TABLE, [])
        a.clock_offset_ms = -1000  # A's items are older than B's write below
        for i in range(50):
            a.put(TABLE, _item(f"k{i}", "before"))
        # Items without bookkeeping (written before the table was global) also get copied.
        a.put(TABLE, _item("plain", "x"))
        a.forget_version(TABLE, _key("plain"))
        # What UpdateTable ReplicaUpdates Create leaves in the two catalogs:
        a.catalog[TABLE].update(replicas=[A, B], settings={REPLICA_PREFIX + B: "CREATING",
                                                           SOURCE_PREFIX + B: A})
        b.add_table(TABLE, [A, B], {REPLICA_PREFIX + B: "CREATING"})
        newer = b.put(TABLE, _item("k1", "written-in-b-meanwhile"))
        assert newer > a.version(TABLE, _key("k1"))  # type: ignore[operator]
        await pair.start_all()
        try:
            await eventually(lambda: a.catalog[TABLE]["settings"][REPLICA_PREFIX + B] == "ACTIVE"
                             and b.catalog[TABLE]["settings"][REPLICA_PREFIX + B] == "ACTIVE",
                             "the replica ACTIVE in both catalogs")
            contents = b.contents(TABLE)
            assert len(contents) == 51
            assert contents["k1"]["v"] == {"S": "written-in-b-meanwhile"}  # newer: kept
            assert contents["k2"]["v"] == {"S": "before"}
            assert b.version(TABLE, _key("k2")) == a.version(TABLE, _key("k2"))
            await eventually(lambda: a.contents(TABLE) == b.contents(TABLE), "converged")
        finally:
            await pair.stop_all()
    run(scenario)


def test_a_batch_for_a_table_that_is_not_a_replica_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair.create(tmp_path)
        pair.regions[A].add_table(TABLE, [A, B])
        pair.regions[B].add_table(TABLE, [])  # same name, but a regional table in B
        await pair.start(B)
        link = PeerLink(B, pair.topology.endpoints()[pair.topology.region(B).replicator_id]
                        .address)
        try:
            from proto import replicator_pb2
            ack = await link.send(replicator_pb2.Batch(
                origin_region=A, table=TABLE, kind="changes",
                changes=json.dumps([{"keys": _key("x"), "item": _item("x", "v"),
                                     "ts": [1, 0], "origin": A}]).encode()))
            assert ack.error_type == "ResourceNotFoundException"
            assert pair.regions[B].contents(TABLE) == {}
        finally:
            await link.close()
            await pair.stop_all()
    run(scenario)


def _long_polled(tmp_path: Path) -> Pair:
    """A pair whose shippers' reads are held far longer than a test waits: whatever arrives in
    time was answered by a record, never by the end of a wait."""
    shipper = dataclasses.replace(FAST.shipper, stream_wait_ms=60_000)
    return Pair.create(tmp_path, dataclasses.replace(FAST, shipper=shipper))


async def _all_reads_held(region: Any, shards: int) -> None:
    await eventually(lambda: region.held_now["StreamRead"] == shards,
                     f"the {shards} shards' reads held")


def test_idle_shards_are_held_and_a_record_written_meanwhile_ships_at_once(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = _long_polled(tmp_path)
        _global(pair)
        await pair.start_all()
        a, b = pair.regions[A], pair.regions[B]
        shards = len(a.pmap.partitions)
        try:
            await _all_reads_held(a, shards)
            reads_before = len(a.calls_of("StreamRead"))
            a.put(TABLE, _item("k1", "while-held"))
            await eventually(lambda: "k1" in b.contents(TABLE), "the item in B", timeout_s=5)
            await _all_reads_held(a, shards)
            # Idle shards made no call meanwhile (a 20 ms poll would have made hundreds); the
            # written one answered its held read and holds a new one (after a partial page).
            assert len(a.calls_of("StreamRead")) - reads_before <= 2
            held = [c for c in a.calls_of("StreamRead")[reads_before:]]
            assert all(c.body["wait_ms"] == 60_000 for c in held), held
        finally:
            await pair.stop_all()
    run(scenario)


def test_a_held_read_follows_the_shards_leader_when_it_moves(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = _long_polled(tmp_path)
        _global(pair)
        await pair.start_all()
        a, b = pair.regions[A], pair.regions[B]
        shards = len(a.pmap.partitions)
        shard = a.shard_of(TABLE, _key("k1"))
        try:
            await _all_reads_held(a, shards)
            reads_before = len(a.calls_of("StreamRead"))
            old = a.leaders[shard.id]
            new = a.leaders[shard.id] = next(n for n in shard.replicas if n != old)

            def read_on_new_leader() -> bool:
                return any(c.partition == shard.id and c.node == new
                           for c in a.calls_of("StreamRead")[reads_before:])
            await eventually(read_on_new_leader, "the shard's reader on the new leader")
            await _all_reads_held(a, shards)
            a.put(TABLE, _item("k1", "after-the-move"))
            await eventually(lambda: "k1" in b.contents(TABLE), "the item in B", timeout_s=5)
        finally:
            await pair.stop_all()
    run(scenario)
