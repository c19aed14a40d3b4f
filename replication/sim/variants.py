"""Deliberately unsafe variants: config switches, each with the checker meant to catch it and
the fault mix that makes the hazard likely. `dynalab sim raft --unsafe NAME` runs one."""
from __future__ import annotations

from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from replication.sim import checkers

if TYPE_CHECKING:
    from replication.sim.simulator import SimConfig


@dataclass(frozen=True, slots=True)
class UnsafeVariant:
    name: str
    expect: str  # the property whose checker must report it
    mix: str
    raft: dict[str, object] = field(default_factory=dict)  # RaftConfig overrides
    sim: dict[str, object] = field(default_factory=dict)  # SimConfig overrides
    nodes: int = 3


VARIANTS: dict[str, UnsafeVariant] = {
    v.name: v for v in (
        # Raft §5.4.2 / Figure 8. One entry per APPEND and one APPEND in flight make a follower
        # acknowledge the old entries before the new leader's no-op, which opens the window.
        UnsafeVariant("commit-old-term", checkers.STATE_MACHINE_SAFETY, "figure8",
                      raft=dict(unsafe_commit_old_term_by_count=True, max_entries_per_msg=1,
                                max_inflight_msgs=1)),
        UnsafeVariant("vote-without-log-check", checkers.LEADER_COMPLETENESS, "partitions",
                      raft=dict(unsafe_vote_without_log_check=True)),
        UnsafeVariant("double-vote", checkers.ELECTION_SAFETY, "chaos",
                      raft=dict(unsafe_vote_ignores_prior_vote=True)),
        UnsafeVariant("skip-prev-log-check", checkers.LOG_MATCHING, "partitions",
                      raft=dict(unsafe_skip_prev_log_check=True)),
        UnsafeVariant("lease-ignores-expiry", checkers.LINEARIZABILITY, "lease-stress",
                      raft=dict(unsafe_lease_ignores_expiry=True)),
        # Sparse heartbeats: a deposed leader learns of its successor only at its next one.
        # Without quiescence: a quiesced leader holds no lease, which hides this hazard.
        UnsafeVariant("lease-no-wait", checkers.LINEARIZABILITY, "lease-idle",
                      raft=dict(unsafe_lease_no_wait=True, heartbeat_ticks=5,
                                quiesce_after_ticks=0)),
        UnsafeVariant("drift-beyond-bound", checkers.LINEARIZABILITY, "drift-beyond"),
        # A quiesced leader that keeps its lease serves it from a stopped clock, long after its
        # followers elected someone else.
        UnsafeVariant("quiesce-keeps-lease", checkers.LINEARIZABILITY, "quiet-lease",
                      raft=dict(unsafe_quiesce_keeps_lease=True)),
        UnsafeVariant("ack-before-persist", checkers.ELECTION_SAFETY, "crashes",
                      sim=dict(unsafe_lazy_fsync=True)),
        UnsafeVariant("ack-before-commit", checkers.ACKED_WRITE_LOST, "crashes",
                      sim=dict(unsafe_ack_on_append=True)),
    )
}


def build_config(seed: int, mix_name: str, steps: int, unsafe: str | None = None,
                 nodes: int | None = None) -> "SimConfig":
    """The SimConfig for a seed, by names (what the CLI and its replay commands use)."""
    from replication.sim.faults import mix_for_seed
    from replication.sim.simulator import SimConfig, sim_raft_config

    variant = VARIANTS[unsafe] if unsafe else None
    raft = sim_raft_config(**(variant.raft if variant else {}))
    extra = dict(variant.sim) if variant else {}
    count = nodes or (variant.nodes if variant else 3)
    return SimConfig(seed=seed, steps=steps, mix=mix_for_seed(mix_name, seed), raft=raft,
                     nodes=count, **extra)  # type: ignore[arg-type]
