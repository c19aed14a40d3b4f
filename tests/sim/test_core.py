"""Unit tests of the Raft core's rules, on a lock-step cluster (tests/sim/harness.py)."""
from __future__ import annotations

import random

import pytest

from replication.logstore import MemoryLogStore
from replication.raft import (
    COMMIT_NOTICE,
    ConfChange,
    ConfChangeType,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftCore,
    Role,
    bootstrap,
)
from replication.types import Entry, EntryKind, HardState
from tests.sim.harness import Cluster

MT = MessageType
E = RaftConfig().election_ticks


def test_a_single_leader_is_elected_and_commits_its_noop() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    assert len(c.leaders()) == 1
    core = c.cores[leader]
    assert core.term == 2  # bootstrap is term 1
    assert core.log_term(core.commit_index) == core.term
    assert all(x.leader_id == leader for x in c.cores.values())


def test_proposals_are_committed_and_applied_everywhere_in_order() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    for i in range(20):
        c.cores[leader].propose(b"x%d" % i)
    c.drain()
    c.tick(times=2)
    for node in "abc":
        assert [e.data for e in c.applied[node]] == [b"x%d" % i for i in range(20)]


def test_followers_learn_a_commit_from_an_unanswered_notice() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    c.sent.clear()
    entry = c.cores[leader].propose(b"x")
    c.drain()  # no tick: what follows the write itself, not the heartbeat rounds
    notices = [m for m in c.sent if m.type == MT.HEARTBEAT and m.context == COMMIT_NOTICE]
    assert sorted(m.to_id for m in notices) == sorted(n for n in "abc" if n != leader)
    assert all(m.commit == entry.index for m in notices)
    # one APPEND with the entry and its ack per follower; no empty APPEND, nothing answers a notice
    assert all(m.entries for m in c.sent if m.type == MT.APPEND)
    assert len([m for m in c.sent if m.type == MT.APPEND_RESP]) == 2
    assert not [m for m in c.sent if m.type == MT.HEARTBEAT_RESP]
    for node in "abc":
        assert c.cores[node].commit_index == entry.index
        assert [e.data for e in c.applied[node]] == [b"x"]


def test_a_lost_commit_notice_is_made_good_by_the_next_heartbeat_round() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    follower = next(n for n in "abc" if n != leader)
    entry = c.cores[leader].propose(b"x")
    real_step = c.cores[follower].step

    def drop_notices(m: Message) -> None:
        if m.context != COMMIT_NOTICE:
            real_step(m)
    c.cores[follower].step = drop_notices  # type: ignore[method-assign]
    c.drain()
    assert c.cores[follower].commit_index < entry.index
    c.cores[follower].step = real_step  # type: ignore[method-assign]
    c.tick(times=2)  # a heartbeat round carries the commit too
    assert c.cores[follower].commit_index >= entry.index
    assert [e.data for e in c.applied[follower]] == [b"x"]


def test_propose_on_a_follower_names_the_leader() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    follower = next(n for n in "abc" if n != leader)
    with pytest.raises(NotLeader) as info:
        c.cores[follower].propose(b"x")
    assert info.value.leader_id == leader


def test_many_proposals_share_one_append_and_inflight_is_bounded() -> None:
    config = RaftConfig(max_entries_per_msg=10, max_inflight_msgs=2)
    c = Cluster(["a", "b", "c"], config)
    leader = c.settle()
    follower = next(n for n in "abc" if n != leader)
    c.cut = {(follower, leader)}  # no acks come back: the window must stay closed
    for i in range(100):
        c.cores[leader].propose(b"x%d" % i)
    c.sent.clear()
    c.drain()
    appends = [m for m in c.sent if m.type == MT.APPEND and m.to_id == follower and m.entries]
    assert len(appends) == 2
    assert [len(m.entries) for m in appends] == [10, 10]
    c.heal()
    c.tick(times=6)
    assert len(c.applied[follower]) == 100


@pytest.mark.parametrize("unsafe", [False, True])
def test_the_log_up_to_date_check_refuses_a_stale_candidate(unsafe: bool) -> None:
    store = MemoryLogStore()
    hard, entries = bootstrap(["a", "b", "c"])
    store.persist(HardState(term=2, vote=None, commit=1),
                  [*entries, Entry(term=2, index=2, kind=EntryKind.NORMAL, data=b"x")])
    voter = RaftCore("b", store, RaftConfig(unsafe_vote_without_log_check=unsafe),
                     random.Random(1))
    for _ in range(E):  # the promise made at boot runs out
        voter.tick()
    voter.step(Message(MT.VOTE, "c", "b", term=5, log_term=1, index=1))  # c lacks index 2
    replies = [m for m in voter.ready().messages if m.type == MT.VOTE_RESP]
    assert len(replies) == 1 and replies[0].reject is not unsafe


def test_prevote_keeps_an_isolated_replica_from_inflating_terms() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    term = c.cores[leader].term
    lonely = next(n for n in "abc" if n != leader)
    c.isolate(lonely)
    c.tick(times=10 * E)
    assert c.cores[lonely].term == term
    assert c.cores[lonely].role == Role.PRE_CANDIDATE
    c.heal()
    c.tick(times=2 * E)
    assert c.leaders() == [leader] and c.cores[leader].term == term


def test_without_prevote_a_rejoining_replica_does_not_depose_a_healthy_leader() -> None:
    c = Cluster(["a", "b", "c"], RaftConfig(pre_vote=False))
    leader = c.settle()
    lonely = next(n for n in "abc" if n != leader)
    c.isolate(lonely)
    c.tick(times=5 * E)
    assert c.cores[lonely].term > c.cores[leader].term  # it campaigned alone
    others = [n for n in "abc" if n != lonely]
    # Its vote requests reach replicas that still hear from the leader: ignored (CheckQuorum).
    c.cut = {(lonely, leader), (leader, lonely)}
    term = c.cores[leader].term
    c.tick(times=3 * E)
    assert c.cores[leader].role == Role.LEADER and c.cores[leader].term == term
    assert all(c.cores[n].leader_id == leader for n in others)


def test_check_quorum_makes_an_isolated_leader_step_down() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    c.isolate(leader)
    c.tick([leader], times=2 * E)
    assert c.cores[leader].role == Role.FOLLOWER


def test_a_follower_in_lease_ignores_vote_requests() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    follower, other = [n for n in "abc" if n != leader]
    core = c.cores[follower]
    term = core.term
    core.step(Message(MT.VOTE, other, follower, term + 1, log_term=99, index=99))
    assert core.term == term
    assert not [m for m in core.ready().messages if m.type == MT.VOTE_RESP]


def test_a_replica_keeps_the_lease_promise_after_a_restart() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    follower, other = [n for n in "abc" if n != leader]
    c.crash(follower)
    core = c.start(follower)
    core.step(Message(MT.VOTE, other, follower, core.term + 1, log_term=99, index=99))
    assert core.term == c.cores[leader].term  # ignored: it may have acked the lease before
    for _ in range(E):
        core.tick()
    new_term = core.term + 1
    core.step(Message(MT.VOTE, other, follower, new_term, log_term=99, index=99))
    assert core.term == new_term
    granted = [m for m in core.ready().messages if m.type == MT.VOTE_RESP]
    assert granted and not granted[0].reject


def _leader_with_old_entry(config: RaftConfig) -> RaftCore:
    """'a' holds an uncommitted entry of term 2 at index 2, then wins term 3 with b's vote."""
    store = MemoryLogStore()
    hard, entries = bootstrap(["a", "b", "c"])
    store.persist(HardState(term=2, vote=None, commit=1),
                  [*entries, Entry(term=2, index=2, kind=EntryKind.NORMAL, data=b"old")])
    core = RaftCore("a", store, config, random.Random(1))
    for _ in range(2 * E):
        core.tick()
        if core.role != Role.FOLLOWER:
            break
    kind = {Role.PRE_CANDIDATE: MT.PRE_VOTE_RESP, Role.CANDIDATE: MT.VOTE_RESP}
    while core.role != Role.LEADER:
        term = core.term + (1 if core.role == Role.PRE_CANDIDATE else 0)
        core.step(Message(kind[core.role], "b", "a", term))
    rd = core.ready()
    store.persist(rd.hard_state, rd.entries, rd.snapshot)
    core.advance(rd)
    assert core.term == 3 and core.last_index == 3  # the no-op of term 3
    return core


def test_entries_of_an_earlier_term_are_not_committed_by_counting() -> None:
    core = _leader_with_old_entry(RaftConfig())
    core.step(Message(MT.APPEND_RESP, "b", "a", 3, index=2))  # b has the old entry only
    assert core.commit_index == 1
    core.step(Message(MT.APPEND_RESP, "b", "a", 3, index=3))  # now b has the no-op too
    assert core.commit_index == 3


def test_the_unsafe_switch_commits_by_counting() -> None:
    core = _leader_with_old_entry(RaftConfig(unsafe_commit_old_term_by_count=True))
    core.step(Message(MT.APPEND_RESP, "b", "a", 3, index=2))
    assert core.commit_index == 2


def test_a_lagging_follower_gets_a_snapshot() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    lagging = next(n for n in "abc" if n != leader)
    c.isolate(lagging)
    for i in range(30):
        c.cores[leader].propose(b"x%d" % i)
    c.drain()
    c.tick([n for n in "abc" if n != lagging], times=2)
    core = c.cores[leader]
    snap = core.build_snapshot(core.applied_index, b"state")
    c.stores[leader].compact(snap)
    assert c.stores[leader].first_index() > c.cores[lagging].last_index + 1
    c.heal()
    c.sent.clear()
    c.tick(times=4)
    assert any(m.type == MT.SNAPSHOT and m.to_id == lagging for m in c.sent)
    assert c.stores[lagging].snapshot().data == b"state"
    assert c.cores[lagging].commit_index == core.commit_index
    assert c.cores[lagging].applied_index == core.applied_index


def test_leadership_transfer() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    target = next(n for n in "abc" if n != leader)
    term = c.cores[leader].term
    c.cores[leader].transfer_leadership(target)
    c.drain()
    assert c.leaders() == [target]
    assert c.cores[target].term == term + 1
    assert c.cores[leader].role == Role.FOLLOWER


def test_no_proposals_and_no_lease_reads_while_a_transfer_is_under_way() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    target = next(n for n in "abc" if n != leader)
    c.tick(times=E)
    core = c.cores[leader]
    assert core.lease_valid
    c.cut = {(leader, target)}  # TimeoutNow never arrives
    core.transfer_leadership(target)
    with pytest.raises(ProposalDropped):
        core.propose(b"x")
    assert not core.lease_valid  # it sent TimeoutNow: the target may win without a lease wait
    c.tick(times=E + 1)
    core.propose(b"y")  # the transfer timed out; proposals are taken again
    assert not core.lease_valid


def test_membership_add_then_remove() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    core = c.cores[leader]
    c.start("d", MemoryLogStore())  # joins empty: no bootstrap
    core.propose_conf_change(ConfChangeType.ADD_VOTER, "d")
    with pytest.raises(ProposalDropped):
        core.propose_conf_change(ConfChangeType.ADD_VOTER, "e")  # one at a time
    c.tick(times=4)
    assert core.voters == ("a", "b", "c", "d")
    assert c.cores["d"].voters == ("a", "b", "c", "d")
    assert c.cores["d"].commit_index == core.commit_index
    removed = next(n for n in "abc" if n != leader)
    core.propose_conf_change(ConfChangeType.REMOVE_VOTER, removed)
    c.tick(times=4)
    assert removed not in core.voters
    with pytest.raises(ValueError):
        core.propose_conf_change(ConfChangeType.REMOVE_VOTER, leader)  # transfer first
    c.crash(removed)
    core.propose(b"after")
    c.tick(times=4)
    assert c.applied["d"][-1].data == b"after"


def test_conf_change_waits_for_an_entry_of_the_leaders_term() -> None:
    core = _leader_with_old_entry(RaftConfig())
    with pytest.raises(ProposalDropped):
        core.propose_conf_change(ConfChangeType.ADD_VOTER, "d")


def test_a_new_leader_serves_no_lease_reads_for_an_election_timeout() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    core = c.cores[leader]
    assert not core.lease_valid
    core.read_index(b"r1")
    c.drain()
    assert [(r.context, r.via_lease) for r in c.reads[leader]] == [(b"r1", False)]
    c.tick(times=E)
    assert core.lease_valid
    core.read_index(b"r2")
    c.drain()
    assert (b"r2", True) in [(r.context, r.via_lease) for r in c.reads[leader]]


def test_an_isolated_leader_loses_its_lease_within_lease_ticks() -> None:
    config = RaftConfig()
    c = Cluster(["a", "b", "c"], config)
    leader = c.settle()
    c.tick(times=E)
    core = c.cores[leader]
    assert core.lease_valid
    c.isolate(leader)
    c.tick([leader], times=config.lease_ticks + config.heartbeat_ticks)
    assert core.role == Role.LEADER and not core.lease_valid
    core.read_index(b"late")
    c.drain()
    assert b"late" not in [r.context for r in c.reads[leader]]  # waits for a quorum round


def test_lease_ticks_leave_room_for_drift() -> None:
    assert RaftConfig(election_ticks=10, max_clock_drift=0.0).lease_ticks == 9
    assert RaftConfig(election_ticks=10, max_clock_drift=0.05).lease_ticks == 8
    assert RaftConfig(election_ticks=10, max_clock_drift=0.2).lease_ticks == 6


def test_read_index_on_a_follower_goes_through_the_leader() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    follower = next(n for n in "abc" if n != leader)
    c.cores[leader].propose(b"x")
    c.drain()
    c.cores[follower].read_index(b"fr")
    c.drain()
    c.tick()
    states = [r for r in c.reads[follower] if r.context == b"fr"]
    assert states and states[0].index >= c.applied[leader][-1].index


def test_a_restarted_replica_keeps_its_term_vote_and_log() -> None:
    c = Cluster(["a", "b", "c"])
    leader = c.settle()
    c.cores[leader].propose(b"x")
    c.drain()
    c.tick(times=2)
    follower = next(n for n in "abc" if n != leader)
    before = c.cores[follower]
    c.crash(follower)
    after = c.start(follower)
    assert (after.term, after.last_index, after.commit_index) == (
        before.term, before.last_index, before.commit_index)
    c.tick(times=2)
    assert [e.data for e in c.applied[follower]][-1] == b"x"


def test_entries_replaced_while_being_persisted_are_handed_out_again() -> None:
    store = MemoryLogStore()
    store.persist(*bootstrap(["a", "b", "c"]))
    core = RaftCore("b", store, RaftConfig(), random.Random(1))
    old = (Entry(2, 2, EntryKind.NORMAL, b"old2"), Entry(2, 3, EntryKind.NORMAL, b"old3"))
    core.step(Message(MT.APPEND, "a", "b", 2, log_term=1, index=1, entries=old, commit=1))
    rd1 = core.ready()
    assert rd1.entries == old
    new = (Entry(3, 3, EntryKind.NORMAL, b"new3"),)
    core.step(Message(MT.APPEND, "c", "b", 3, log_term=2, index=2, entries=new, commit=1))
    store.persist(rd1.hard_state, rd1.entries, rd1.snapshot)
    core.advance(rd1)
    rd2 = core.ready()
    assert rd2.entries == new
    store.persist(rd2.hard_state, rd2.entries, rd2.snapshot)
    core.advance(rd2)
    assert [e.data for e in store.entries(2, 4)] == [b"old2", b"new3"]


def test_conf_change_round_trip() -> None:
    change = ConfChange(ConfChangeType.ADD_VOTER, "n4", ("n1", "n2", "n3", "n4"))
    assert ConfChange.decode(change.encode()) == change
    with pytest.raises(ValueError):
        ConfChange(ConfChangeType.ADD_VOTER, "a|b", ()).encode()
