"""Quiescence in the core (core.py's docstring) and node-level liveness (raft/liveness.py), on
the lock-step cluster of tests/sim/harness.py. `Cluster.tick` ticks every replica, quiesced or
not, which is allowed (only its clock moves); `skip` models a driver that stops ticking
quiesced replicas and passes the skipped ticks on when it wakes them."""
from __future__ import annotations

import random

import pytest

from replication.logstore import MemoryLogStore
from replication.raft import (
    QUIESCE,
    Message,
    MessageType,
    PeerLiveness,
    RaftConfig,
    RaftCore,
    Role,
    bootstrap,
)
from tests.sim.harness import Cluster

MT = MessageType
E = 10
Q = 3  # quiesce after this many idle ticks
CONFIG = RaftConfig(election_ticks=E, heartbeat_ticks=2, quiesce_after_ticks=Q)


def quiesced_cluster() -> tuple[Cluster, str, list[str]]:
    """Three replicas, a leader with a lease once, then everybody quiesced."""
    c = Cluster(["a", "b", "c"], CONFIG)
    leader = c.settle()
    c.cores[leader].propose(b"x")
    c.tick(times=E + Q + 2)
    assert all(core.quiesced for core in c.cores.values()), {
        n: core.quiesced for n, core in c.cores.items()}
    return c, leader, [n for n in "abc" if n != leader]


def test_an_idle_leader_quiesces_its_group_and_then_nobody_sends_anything() -> None:
    c, leader, followers = quiesced_cluster()
    term = c.cores[leader].term
    c.sent.clear()
    c.tick(times=20 * E)
    assert c.sent == []  # no heartbeats, no campaigns
    assert c.leaders() == [leader] and c.cores[leader].term == term
    assert all(c.cores[f].role == Role.FOLLOWER and c.cores[f].leader_id == leader
               for f in followers)


def test_the_quiesce_heartbeat_goes_to_every_follower_and_gets_no_answer() -> None:
    c = Cluster(["a", "b", "c"], CONFIG)
    leader = c.settle()
    c.sent.clear()
    c.tick(times=E + Q + 2)
    quiesce = [m for m in c.sent if m.type == MT.HEARTBEAT and m.context == QUIESCE]
    assert sorted(m.to_id for m in quiesce) == sorted(n for n in "abc" if n != leader)
    assert all(m.commit == c.cores[leader].commit_index for m in quiesce)
    after = c.sent[c.sent.index(quiesce[-1]) + 1:]
    assert not [m for m in after if m.type == MT.HEARTBEAT_RESP]


def test_no_quiescence_when_disabled() -> None:
    c = Cluster(["a", "b", "c"], RaftConfig(election_ticks=E, heartbeat_ticks=2))
    leader = c.settle()
    c.tick(times=5 * E)
    assert not any(core.quiesced for core in c.cores.values())
    c.sent.clear()
    c.tick(times=2)
    assert [m for m in c.sent if m.type == MT.HEARTBEAT and m.from_id == leader]


def test_a_lagging_follower_keeps_the_leader_awake() -> None:
    c = Cluster(["a", "b", "c"], CONFIG)
    leader = c.settle()
    lagging = next(n for n in "abc" if n != leader)
    c.isolate(lagging)
    c.cores[leader].propose(b"x")
    c.tick([n for n in "abc" if n != lagging], times=5 * E)
    assert not c.cores[leader].quiesced
    c.heal()
    c.tick(times=E + Q)
    assert all(core.quiesced for core in c.cores.values())


def test_a_proposal_wakes_the_group_and_it_quiesces_again_once_idle() -> None:
    c, leader, followers = quiesced_cluster()
    c.cores[leader].propose(b"y")
    assert not c.cores[leader].quiesced
    c.drain()
    assert not any(c.cores[f].quiesced for f in followers)  # the APPEND woke them
    assert all(c.applied[n][-1].data == b"y" for n in "abc")
    c.tick(times=Q + 2)
    assert all(core.quiesced for core in c.cores.values())


def test_any_message_wakes_a_quiesced_replica() -> None:
    c, leader, (f1, f2) = quiesced_cluster()
    term = c.cores[leader].term
    # A stray answer (from before the quiescence, say) reaches the leader: it heartbeats again.
    c.cores[leader].step(Message(MT.APPEND_RESP, f1, leader, term, index=1))
    assert not c.cores[leader].quiesced
    c.sent.clear()
    c.drain()
    assert {m.to_id for m in c.sent if m.type == MT.HEARTBEAT} == {f1, f2}
    assert not c.cores[f1].quiesced and not c.cores[f2].quiesced
    c.tick(times=Q + 2)
    assert all(core.quiesced for core in c.cores.values())
    c.cores[f1].step(Message(MT.PRE_VOTE, f2, f1, term + 1, log_term=term, index=99))
    assert not c.cores[f1].quiesced and c.cores[f1].term == term  # woken, vote refused


def test_a_late_ack_of_the_last_round_does_not_wake_the_leader() -> None:
    c = Cluster(["a", "b", "c"], CONFIG)
    leader = c.settle()
    f1 = next(n for n in "abc" if n != leader)
    c.tick(times=E)
    last_round = [m for m in c.sent if m.type == MT.HEARTBEAT and m.context != QUIESCE][-1]
    c.tick(times=Q + 2)
    core = c.cores[leader]
    assert core.quiesced
    core.step(Message(MT.HEARTBEAT_RESP, f1, leader, core.term, context=last_round.context))
    assert core.quiesced and not core.has_ready()
    core.step(Message(MT.HEARTBEAT_RESP, f1, leader, core.term, context=QUIESCE))  # a refusal
    assert not core.quiesced


def test_a_quiesced_follower_never_campaigns_on_its_own() -> None:
    c, leader, followers = quiesced_cluster()
    term = c.cores[leader].term
    c.crash(leader)  # the leader's node dies; nothing of its group says so
    c.tick(times=20 * E)
    assert all(c.cores[f].role == Role.FOLLOWER and c.cores[f].quiesced for f in followers)
    assert all(c.cores[f].term == term for f in followers)


def test_followers_woken_because_the_leaders_node_is_dead_elect_a_new_leader() -> None:
    c, leader, followers = quiesced_cluster()
    term = c.cores[leader].term
    c.crash(leader)
    skipped = 3 * E  # the driver stopped ticking them; the leader's node has been silent since
    for f in followers:
        c.cores[f].wake(skipped_ticks=skipped, leader_silent_ticks=skipped)
    for _ in range(2 * E):
        c.tick(followers)
        if c.leaders():
            break
    assert len(c.leaders()) == 1 and c.leaders()[0] in followers
    assert c.cores[c.leaders()[0]].term > term


def test_a_follower_woken_with_a_live_leader_keeps_its_lease_promise() -> None:
    c, leader, (f1, f2) = quiesced_cluster()
    term = c.cores[leader].term
    # f1 is woken (a false alarm); f2 is woken by f1's pre-vote, with its leader's node heard
    # from a tick ago: it must refuse, whatever the number of ticks it skipped.
    c.cores[f2].wake(skipped_ticks=100 * E, leader_silent_ticks=1)
    c.cores[f2].step(Message(MT.PRE_VOTE, f1, f2, term + 1, log_term=term, index=99))
    assert not [m for m in c.cores[f2].ready().messages if m.type == MT.PRE_VOTE_RESP]


def test_the_credit_never_exceeds_the_ticks_skipped() -> None:
    c, leader, (f1, f2) = quiesced_cluster()
    term = c.cores[leader].term
    c.cores[f2].wake(skipped_ticks=2, leader_silent_ticks=100 * E)  # a liveness guess too big
    c.cores[f2].step(Message(MT.PRE_VOTE, f1, f2, term + 1, log_term=term, index=99))
    assert not [m for m in c.cores[f2].ready().messages if m.type == MT.PRE_VOTE_RESP]
    for _ in range(E - 2):
        c.cores[f2].tick()
    c.cores[f2].step(Message(MT.PRE_VOTE, f1, f2, term + 1, log_term=term, index=99))
    granted = [m for m in c.cores[f2].ready().messages if m.type == MT.PRE_VOTE_RESP]
    assert granted and not granted[0].reject


def test_a_lost_quiesce_heartbeat_costs_a_wake_up_not_an_election() -> None:
    c = Cluster(["a", "b", "c"], CONFIG)
    leader = c.settle()
    f1 = next(n for n in "abc" if n != leader)
    term = c.cores[leader].term
    c.cut = {(leader, f1)}
    c.tick(times=E + Q + 2)  # f1 misses the quiesce heartbeat
    assert c.cores[leader].quiesced and not c.cores[f1].quiesced
    c.heal()
    c.tick(times=3 * E)  # f1's pre-vote wakes the leader, which heartbeats it back
    assert c.leaders() == [leader] and c.cores[leader].term == term
    assert c.cores[f1].leader_id == leader


def test_a_follower_that_is_behind_answers_the_quiesce_heartbeat() -> None:
    store = MemoryLogStore()
    store.persist(*bootstrap(["a", "b", "c"]))
    core = RaftCore("b", store, CONFIG, random.Random(1))
    core.step(Message(MT.HEARTBEAT, "a", "b", 2, commit=5, context=QUIESCE))  # we have 1 entry
    answers = [m for m in core.ready().messages if m.type == MT.HEARTBEAT_RESP]
    assert not core.quiesced and answers and answers[0].context == QUIESCE
    core.step(Message(MT.HEARTBEAT, "a", "b", 2, commit=1, context=QUIESCE))
    assert core.quiesced


def test_a_quiesced_leader_has_no_lease_and_reads_wake_it() -> None:
    c, leader, _ = quiesced_cluster()
    core = c.cores[leader]
    assert not core.lease_valid
    core.read_index(b"r1")
    assert not core.quiesced
    c.drain()
    assert [(r.context, r.via_lease) for r in c.reads[leader]] == [(b"r1", False)]
    assert core.lease_valid  # the read's round renewed it
    core.read_index(b"r2")
    c.drain()
    assert (b"r2", True) in [(r.context, r.via_lease) for r in c.reads[leader]]


def test_a_late_ack_of_a_round_from_before_the_pause_gives_no_lease() -> None:
    c = Cluster(["a", "b", "c"], CONFIG)
    leader = c.settle()
    core = c.cores[leader]
    f1, f2 = [n for n in "abc" if n != leader]
    c.tick(times=E)
    rounds = [m for m in c.sent if m.type == MT.HEARTBEAT and m.from_id == leader
              and m.context != QUIESCE]
    old = rounds[-1].context
    c.tick(times=Q + 2)
    assert core.quiesced
    # The driver stopped ticking it for a long time; then acks of the old round turn up.
    core.wake(skipped_ticks=50 * E)
    core.step(Message(MT.HEARTBEAT_RESP, f1, leader, core.term, context=old))
    core.step(Message(MT.HEARTBEAT_RESP, f2, leader, core.term, context=old))
    assert not core.lease_valid


def test_note_activity_puts_off_quiescence() -> None:
    c = Cluster(["a", "b", "c"], CONFIG)
    leader = c.settle()
    for _ in range(5 * E):
        c.cores[leader].note_activity()  # a lease read served by the driver, every tick
        c.tick()
    assert not c.cores[leader].quiesced
    c.tick(times=Q + 2)
    assert c.cores[leader].quiesced


def test_a_restarted_follower_finds_its_quiesced_leader() -> None:
    c, leader, (f1, _) = quiesced_cluster()
    term = c.cores[leader].term
    c.crash(f1)
    c.start(f1)  # starts awake, knowing no leader: its pre-vote wakes the group
    c.tick(times=4 * E)
    assert c.cores[f1].leader_id == leader and c.cores[leader].term == term


# -- node-level liveness ---------------------------------------------------------------------

def test_pings_go_out_every_ping_ticks() -> None:
    live = PeerLiveness(ping_ticks=2, timeout_ticks=4)
    assert [t for t in range(7) if live.ping_due(t)] == [0, 2, 4, 6]


def test_a_new_incarnation_is_a_restart() -> None:
    live = PeerLiveness(ping_ticks=2, timeout_ticks=4)
    assert not live.restarted("b", b"one")  # never heard of: nothing to compare
    live.heard("b", 1, b"one")
    assert not live.restarted("b", b"one") and live.restarted("b", b"two")


def test_the_quiesce_heartbeat_counts_as_a_sign_of_life() -> None:
    live = PeerLiveness(ping_ticks=2, timeout_ticks=4)
    live.alive("b", 100)  # no ping ever came; a follower parked just now
    assert live.silent_ticks("b", 102) == 2 and not live.dead("b", 102)


def test_a_peer_is_dead_after_the_timeout_of_silence() -> None:
    live = PeerLiveness(ping_ticks=2, timeout_ticks=4)
    live.heard("b", 10)
    assert live.silent_ticks("b", 13) == 3 and not live.dead("b", 13)
    assert live.dead("b", 14)
    assert live.silent_ticks("never", 7) == 7  # counted from the start


def test_liveness_defaults_follow_the_election_timeout() -> None:
    live = PeerLiveness.for_raft(RaftConfig(election_ticks=4, heartbeat_ticks=1))
    assert (live.ping_ticks, live.timeout_ticks) == (2, 4)
    with pytest.raises(ValueError):
        PeerLiveness(ping_ticks=3, timeout_ticks=3)
