"""The replicator's pure-ish parts: the checkpoint store (durable, written only when dirty, never
backwards, refuses a corrupt file), the lag tracker, and the record/partition helpers. When the
replicator flushes the store is tested in test_replicator_inprocess.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dynalab.layout import item_token
from dynalab.ring import PartitionMap, RingSnapshot
from dynalab.values import KeySchema
from replication.replicator import changes as wire
from replication.replicator.checkpoints import CheckpointError, CheckpointStore
from replication.replicator.lag import LagTracker, percentile
from tests.global_tables.inprocess import two_regions


def _seq(n: int) -> str:
    return f"{n:021d}"


def test_cursors_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r" / "checkpoints.json"
    store = CheckpointStore(path)
    assert store.get("eu-west-1", "t1", "p1") is None
    store.advance("eu-west-1", "t1", "p1", _seq(5))
    store.advance("eu-west-1", "t2", "p9", _seq(7))
    store.flush()
    again = CheckpointStore(path)
    assert again.get("eu-west-1", "t1", "p1") == _seq(5)
    assert again.get("eu-west-1", "t2", "p9") == _seq(7)
    assert again.pairs() == {("eu-west-1", "t1"), ("eu-west-1", "t2")}
    assert json.loads(path.read_text())["format"] == 1


def test_a_cursor_never_moves_backwards(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "c.json")
    store.advance("d", "t", "p", _seq(100))
    store.advance("d", "t", "p", _seq(99))  # a late duplicate ack
    store.advance("d", "t", "p", "99")      # shorter padding must not compare as greater
    assert store.get("d", "t", "p") == _seq(100)
    store.advance("d", "t", "p", _seq(101))
    assert store.get("d", "t", "p") == _seq(101)


def test_only_a_change_marks_the_store_dirty_and_only_a_dirty_store_is_written(
        tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    told: list[None] = []
    store = CheckpointStore(path, on_dirty=lambda: told.append(None))
    store.flush()
    assert not path.exists() and not store.dirty  # nothing to write
    store.advance("d", "t", "p", _seq(2))
    assert store.dirty and len(told) == 1 and not path.exists()  # in memory until a flush
    store.advance("d", "t", "p", _seq(1))  # backwards: ignored, so not a change
    store.forget("d", "other")  # nothing to forget: not a change
    assert len(told) == 1
    store.flush()
    assert not store.dirty and CheckpointStore(path).get("d", "t", "p") == _seq(2)
    path.unlink()
    store.flush()  # clean: no write
    assert not path.exists()
    store.forget("d", "t")
    assert store.dirty and len(told) == 2


def test_a_failed_flush_leaves_the_store_dirty(tmp_path: Path) -> None:
    """The replicator's flusher tries again while the store is dirty."""
    folder = tmp_path / "r"
    store = CheckpointStore(folder / "c.json")
    store.advance("d", "t", "p", _seq(1))
    folder.write_text("a file where the folder should be")
    with pytest.raises(OSError):
        store.flush()
    assert store.dirty
    folder.unlink()
    store.flush()
    assert not store.dirty and CheckpointStore(folder / "c.json").get("d", "t", "p") == _seq(1)


def test_forget_drops_a_destination_tables_cursors(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "c.json")
    store.advance("d", "t", "p", _seq(1))
    store.advance("d", "u", "p", _seq(1))
    store.forget("d", "t")
    store.flush()
    again = CheckpointStore(tmp_path / "c.json")
    assert again.get("d", "t", "p") is None and again.get("d", "u", "p") == _seq(1)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"format": 99, "cursors": {}}),
                                  json.dumps([1, 2])])
def test_a_corrupt_file_is_refused_not_silently_reset(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(CheckpointError):
        CheckpointStore(path)


def test_a_crash_mid_flush_leaves_the_previous_file(tmp_path: Path) -> None:
    """kill -9 of a process that is flushing over and over: the file on disk always parses
    and holds a cursor the process had acknowledged (write-temp, fsync, rename)."""
    path = tmp_path / "c.json"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from replication.replicator.checkpoints import CheckpointStore
        store = CheckpointStore(Path({str(path)!r}))
        for i in range(1, 1_000_000):
            store.advance("d", "t", "p", f"{{i:021d}}")
            store.flush()
            if i == 300:
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2],
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
                          timeout=60)
    assert done.returncode == -9
    assert CheckpointStore(path).get("d", "t", "p") in (_seq(299), _seq(300))


def test_lag_counts_pending_records_and_their_age() -> None:
    lag = LagTracker("us-east-1")
    stream = ("t", "p1")
    lag.read("eu-west-1", stream, [1000.0, 1100.0, 1200.0])
    lag.read("eu-west-1", ("t", "p2"), [1050.0])
    view = lag.snapshot(2000.0)["pairs"]["us-east-1->eu-west-1"]
    assert view["pending_records"] == 4 and view["oldest_unapplied_age_ms"] == 1000
    lag.acked("eu-west-1", stream, 2, now_ms=1300.0)
    view = lag.snapshot(2000.0)["pairs"]["us-east-1->eu-west-1"]
    assert view["pending_records"] == 2 and view["oldest_unapplied_age_ms"] == 950
    assert view["shipped_records"] == 2
    assert view["apply_lag_ms"] == {"p50": 200.0, "p99": 300.0, "count": 2}
    # Samples leave the window after 10 s.
    assert lag.snapshot(20_000.0)["pairs"]["us-east-1->eu-west-1"]["apply_lag_ms"]["count"] == 0


def test_incoming_batches_are_counted_per_source() -> None:
    lag = LagTracker("eu-west-1")
    lag.incoming("us-east-1", 3, 1)
    lag.incoming("us-east-1", 2, 0)
    assert lag.snapshot(0)["incoming"] == {"us-east-1->eu-west-1": {
        "applied": 5, "skipped": 1, "batches": 2}}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7 and percentile([], 0.5) is None


def test_records_become_replica_apply_changes() -> None:
    keys = {"pk": {"S": "a"}}
    put = {"seq": _seq(1), "event": "MODIFY", "keys": keys, "new": {**keys, "v": {"N": "1"}},
           "old": keys, "time_ms": 5, "origin": "us-east-1", "ts": [5, 2]}
    assert wire.from_record(put) == {"keys": keys, "item": put["new"], "ts": [5, 2],
                                     "origin": "us-east-1"}
    removed = {**put, "event": "REMOVE", "new": None}
    assert wire.from_record(removed)["item"] is None
    assert wire.decode(wire.encode([wire.from_record(put)])) == [wire.from_record(put)]


def test_changes_are_grouped_by_the_receiving_regions_partitions() -> None:
    topology = two_regions()
    pmap = PartitionMap.build(RingSnapshot.for_region(topology, "eu-west-1"), topology)
    schema = KeySchema("pk", "S", None, None)
    changes = [{"keys": {"pk": {"S": f"k{i}"}}, "item": None, "ts": [1, 0], "origin": "x"}
               for i in range(200)]
    groups = wire.by_partition(changes, schema, pmap)
    assert sum(len(g) for g in groups.values()) == 200 and len(groups) > 1
    for partition_id, group in groups.items():
        for change in group:
            assert pmap.for_token(item_token(change["keys"], schema)).id == partition_id


def test_backfill_changes_keep_the_stored_version() -> None:
    schema = KeySchema("pk", "S", None, None)
    item = {"pk": {"S": "a"}, "v": {"S": "x"}}
    assert wire.from_stored(item, {"ts": [9, 1], "origin": "eu-west-1"}, schema, "us-east-1") \
        == {"keys": {"pk": {"S": "a"}}, "item": item, "ts": [9, 1], "origin": "eu-west-1"}
    # No bookkeeping (written before the table was global): the lowest possible version.
    assert wire.from_stored(item, None, schema, "us-east-1")["ts"] == [0, 0]
