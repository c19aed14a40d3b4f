"""Fault mixes: what the simulated world does to the replicas, as data (probabilities, ranges).

A mix never selects a code path; the simulator reads these numbers. Times are in nominal ticks
(one tick of a clock with no drift).
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class FaultMix:
    name: str
    # Network, per message.
    drop: float = 0.0
    duplicate: float = 0.0
    delay_ticks: tuple[float, float] = (0.05, 0.4)
    long_delay: float = 0.0  # chance of a much longer delay (reorders across heartbeat rounds)
    long_delay_ticks: float = 6.0
    # Faults: on average one every `fault_every_ticks`, chosen by the weights below.
    fault_every_ticks: float = 0.0  # 0: no faults
    isolate: float = 0.0  # cut one replica off (the leader with probability leader_bias)
    split: float = 0.0  # a minority and a majority
    bridge: float = 0.0  # two halves that only one replica can talk to
    flap: float = 0.0  # a replica cut off and let back in, over and over
    one_way: float = 0.0  # a link that carries messages in one direction only
    crash: float = 0.0  # kill -9: loses everything not persisted; restarts after down_ticks
    transfer: float = 0.0  # the leader hands over to another replica
    replace: float = 0.0  # add a new replica, then remove an old one
    skew: float = 0.0  # one replica's clock turns slow (rate 1 - drift), the others' fast
    leader_bias: float = 0.6
    fault_ticks: tuple[float, float] = (5.0, 40.0)  # how long a partition lasts
    down_ticks: tuple[float, float] = (1.0, 30.0)  # how long a crashed replica stays down
    # Clocks: each replica ticks at a fixed rate drawn from [1 - drift, 1 + drift]; None means
    # the bound the Raft config assumes (RaftConfig.max_clock_drift).
    drift: float | None = None
    # Disk: a Ready is persisted this long after it is taken (a crash in between loses it).
    disk_ticks: tuple[float, float] = (0.02, 0.3)
    # Workload.
    clients: int = 3
    keys: int = 3
    write_ratio: float = 0.5
    lease_ratio: float = 0.7  # reads that may use the leader's lease (else forced ReadIndex)
    # Of those, the share tried first on the node's fast path (RaftDriver.lease_read_ok): served
    # at once from the state machine, with no core input, so it wakes nothing.
    fast_lease_ratio: float = 0.5
    random_target: float = 0.15  # requests sent to a random replica instead of the known leader
    think_ticks: tuple[float, float] = (0.0, 2.0)
    # Idle periods: on average one every `idle_every_ticks` (0: none), clients start nothing new
    # for `idle_ticks`, so the group goes quiet and may quiesce; faults go on meanwhile.
    idle_every_ticks: float = 40.0
    idle_ticks: tuple[float, float] = (10.0, 40.0)
    op_timeout_ticks: float = 25.0
    snapshot_every: int = 40  # applied entries between state-machine snapshots (log compaction)

    def with_(self, **changes: object) -> "FaultMix":
        return replace(self, **changes)  # type: ignore[arg-type]


_PARTITIONS = dict(isolate=3.0, split=2.0, bridge=1.0, flap=1.0, one_way=1.0)

MIXES: dict[str, FaultMix] = {
    mix.name: mix for mix in (
        FaultMix("calm"),
        FaultMix("lossy", drop=0.12, duplicate=0.08, long_delay=0.05, delay_ticks=(0.05, 1.5)),
        FaultMix("partitions", fault_every_ticks=12.0, drop=0.02, **_PARTITIONS),
        FaultMix("crashes", fault_every_ticks=12.0, crash=1.0, drop=0.02, snapshot_every=15),
        FaultMix("membership", fault_every_ticks=15.0, replace=2.0, transfer=1.0, crash=0.5,
                 isolate=0.5, snapshot_every=15),
        FaultMix("drift", drift=None, fault_every_ticks=12.0, isolate=3.0, split=1.0, crash=0.5,
                 skew=2.0, leader_bias=0.9, lease_ratio=1.0),
        FaultMix("chaos", fault_every_ticks=8.0, drop=0.06, duplicate=0.04, long_delay=0.03,
                 delay_ticks=(0.05, 1.0), crash=2.0, transfer=0.5, replace=0.5,
                 snapshot_every=20, **_PARTITIONS),
    )
}

# Mixes aimed at one hazard each. Not in the default rotation: the tests use them to show that
# each checker catches the unsafe variant it is meant to catch (see replication.sim.variants).
TARGETED: dict[str, FaultMix] = {
    mix.name: mix for mix in (
        # Leaders isolated while clients keep writing to them, so new leaders inherit long
        # uncommitted tails of older terms: the setting of the Raft paper's Figure 8.
        FaultMix("figure8", fault_every_ticks=3.0, isolate=1.0, leader_bias=0.9,
                 fault_ticks=(3.0, 20.0), drop=0.1, clients=5, write_ratio=0.9,
                 random_target=0.0, snapshot_every=1000),
        # A leader cut off long enough for a successor, clients that keep reading from it.
        FaultMix("lease-stress", fault_every_ticks=20.0, isolate=3.0, bridge=1.0, one_way=1.0,
                 transfer=1.0, leader_bias=0.9, fault_ticks=(15.0, 40.0), clients=6, keys=2,
                 write_ratio=0.4, lease_ratio=1.0, random_target=0.1, op_timeout_ticks=6.0,
                 snapshot_every=1000),
        # Mostly reads, so a replica cut off from the leader alone still has an up-to-date log
        # and can win an election while the leader's lease runs. No idle periods: a quiesced
        # leader holds no lease, which would hide the hazard.
        FaultMix("lease-idle", fault_every_ticks=25.0, bridge=3.0, leader_bias=0.9,
                 fault_ticks=(20.0, 40.0), clients=6, keys=1, write_ratio=0.15, lease_ratio=1.0,
                 random_target=0.3, op_timeout_ticks=6.0, think_ticks=(0.5, 3.0),
                 snapshot_every=1000, idle_every_ticks=0.0),
        # Leaders cut off while their group is quiesced, readers that keep using the fast lease
        # path on them: a quiesced leader must not hold a lease (its clock may stand still).
        FaultMix("quiet-lease", fault_every_ticks=25.0, isolate=3.0, leader_bias=1.0,
                 fault_ticks=(25.0, 50.0), clients=4, keys=1, write_ratio=0.3, lease_ratio=1.0,
                 fast_lease_ratio=1.0, random_target=0.2, op_timeout_ticks=6.0,
                 idle_every_ticks=15.0, idle_ticks=(15.0, 30.0), snapshot_every=1000),
        # Clocks that break the lease's assumption (drift far past RaftConfig.max_clock_drift):
        # a leader whose clock turns slow holds its lease longer than its fast followers wait.
        FaultMix("drift-beyond", drift=0.6, fault_every_ticks=15.0, isolate=3.0, skew=3.0,
                 leader_bias=0.9, fault_ticks=(15.0, 40.0), clients=6, keys=2, write_ratio=0.4,
                 lease_ratio=1.0, random_target=0.1, op_timeout_ticks=6.0, snapshot_every=1000),
    )
}
ALL_MIXES: dict[str, FaultMix] = {**MIXES, **TARGETED}
DEFAULT_ROTATION: tuple[str, ...] = tuple(MIXES)


def mix_for_seed(name: str, seed: int) -> FaultMix:
    """`name` is a mix, or "all": the default rotation, one mix per seed."""
    if name == "all":
        return MIXES[DEFAULT_ROTATION[seed % len(DEFAULT_ROTATION)]]
    return ALL_MIXES[name]
