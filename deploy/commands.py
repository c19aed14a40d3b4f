"""`dynalab up` and the other cluster-lifecycle commands.

Until the regional cluster lands (issue 4), `up` runs what exists: a short seeded Raft simulation
of one partition's three replicas, so the main-job command shows the replication core at work.
"""
from __future__ import annotations

import importlib


def main(argv: list[str]) -> int:
    print("dynalab: the multi-process cluster is not built yet; running what exists:")
    print("  dynalab sim raft --seeds 20")
    sim = importlib.import_module("replication.sim.cli")
    return int(sim.main(["sim", "raft", "--seeds", "20"]) or 0)
