"""RaftConfig: the knobs of one replica. Times are in ticks of the replica's own clock."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RaftConfig:
    election_ticks: int = 10  # base election timeout; each replica randomizes in [E, 2E)
    heartbeat_ticks: int = 2
    pre_vote: bool = True
    check_quorum: bool = True  # leader steps down without a quorum; followers honour its lease
    lease_reads: bool = True  # serve reads under a lease when one is held, else ReadIndex
    max_clock_drift: float = 0.05  # bound on |tick rate - 1| of every replica, as a fraction
    max_entries_per_msg: int = 256
    max_bytes_per_msg: int = 256 * 1024
    max_inflight_msgs: int = 32  # APPENDs in flight per follower before waiting for acks
    max_inflight_bytes: int = 4 * 1024 * 1024
    # Quiescence (CockroachDB's): a leader whose group has been idle this many ticks, with every
    # follower caught up, tells them so and stops heartbeating; 0 = never. See core.py.
    quiesce_after_ticks: int = 0
    # Deliberately unsafe variants, for showing that the simulator's checkers catch them.
    unsafe_commit_old_term_by_count: bool = False
    unsafe_vote_without_log_check: bool = False
    unsafe_vote_ignores_prior_vote: bool = False
    unsafe_skip_prev_log_check: bool = False
    unsafe_lease_ignores_expiry: bool = False
    unsafe_lease_no_wait: bool = False  # nobody waits out an old lease: followers vote while
    # they still honour one, and a new leader serves lease reads at once
    unsafe_quiesce_keeps_lease: bool = False  # a quiescing leader keeps its lease (and its
    # clock may stand still while quiesced)

    def __post_init__(self) -> None:
        if self.heartbeat_ticks < 1 or self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("need 1 <= heartbeat_ticks < election_ticks")
        if not 0.0 <= self.max_clock_drift < 1.0:
            raise ValueError("max_clock_drift is a fraction in [0, 1)")
        if self.max_entries_per_msg < 1 or self.max_inflight_msgs < 1:
            raise ValueError("message and inflight bounds must be >= 1")
        if self.quiesce_after_ticks < 0:
            raise ValueError("quiesce_after_ticks must be >= 0 (0: never quiesce)")

    @property
    def lease_ticks(self) -> int:
        """How long a quorum-acknowledged heartbeat round keeps the leader's lease, counted from
        when the round was sent. A follower that acked it refuses other candidates for E of its
        own ticks after receiving it; the first of those may come at once, so E-1 ticks are
        certain, and the two clocks may run (1-drift) and (1+drift) fast."""
        drift = self.max_clock_drift
        return max(0, math.floor((self.election_ticks - 1) * (1 - drift) / (1 + drift)))
