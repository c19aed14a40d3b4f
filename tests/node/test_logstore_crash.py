"""kill -9 a process that persists to a RocksLogEngine, many times, and check nothing it
acknowledged is lost and nothing half-written appears.

Each round: copy the DB's state into MemoryLogStores, start the writer with a new seed, kill it
after a random number of acknowledgements, reopen the DB, and require it to equal the replay of
either the k acknowledged operations or k + 1 (the one in flight may or may not have landed).
"""
from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from node.logstore import RocksLogEngine
from replication.logstore import LogStore, MemoryLogStore
from tests.node.crash_writer import GROUPS, apply_to_memory, next_op
from tests.node.test_logstore import dump

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 20
ACK_DEADLINE_S = 20.0


def copy_to_memory(store: LogStore) -> MemoryLogStore:
    mem = MemoryLogStore()
    mem.persist(None, [], store.snapshot())
    mem.persist(store.hard_state(), store.entries(store.first_index(), store.last_index() + 1))
    return mem


def read_disk(path: Path) -> dict[str, tuple[object, ...]]:
    engine = RocksLogEngine(path)
    try:
        return {g: dump(engine.store(g)) for g in GROUPS}
    finally:
        engine.close()


def run_writer_until(path: Path, seed: int, acks_wanted: int, kill_delay_s: float) -> int:
    """Start the writer, kill -9 it `kill_delay_s` after it acknowledged `acks_wanted` operations
    (so the kill lands at varied points of the next write); return how many it acknowledged."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.node.crash_writer", str(path), str(seed)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True)
    reader.start()
    acked = 0
    deadline = time.monotonic() + ACK_DEADLINE_S
    try:
        while acked < acks_wanted:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            acked += line.strip() != "ready"
        time.sleep(kill_delay_s)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        reader.join(timeout=10)
    while not lines.empty():
        acked += lines.get().strip() != "ready"
    return acked


def replay(start: dict[str, MemoryLogStore], seed: int, ops: int) -> dict[str, tuple[object, ...]]:
    rng = random.Random(seed)
    for _ in range(ops):
        apply_to_memory(next_op(rng, start), start)
    return {g: dump(s) for g, s in start.items()}


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "db"
    chooser = random.Random(2024)
    total_acked = 0
    for round_number in range(ROUNDS):
        engine = RocksLogEngine(path)
        before = {g: copy_to_memory(engine.store(g)) for g in GROUPS}
        engine.close()
        seed = 1000 + round_number
        acked = run_writer_until(path, seed, chooser.randint(1, 40), chooser.uniform(0, 0.004))
        total_acked += acked
        on_disk = read_disk(path)
        acked_state = replay({g: copy_to_memory(s) for g, s in before.items()}, seed, acked)
        in_flight_state = replay(before, seed, acked + 1)
        assert on_disk in (acked_state, in_flight_state), f"round {round_number}, seed {seed}"
    assert total_acked >= ROUNDS
