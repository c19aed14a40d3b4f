"""Progress: the leader's view of one follower (etcd's tracker.Progress, cut down)."""
from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.IntEnum):
    PROBE = 0  # one APPEND at a time until we learn where the logs match
    REPLICATE = 1  # stream APPENDs optimistically, bounded by the inflight window
    SNAPSHOT = 2  # a snapshot is on its way; send nothing else


class Progress:
    __slots__ = ("match", "next", "state", "probe_sent", "inflight", "inflight_bytes",
                 "pending_snapshot", "snapshot_sent_tick", "recent_active", "sent_commit",
                 "acked_round", "last_ack_tick")

    def __init__(self, next_index: int, now_ticks: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflight: deque[tuple[int, int, int]] = deque()  # (last index, bytes, sent tick)
        self.inflight_bytes = 0
        self.pending_snapshot = 0
        self.snapshot_sent_tick = 0
        self.recent_active = False  # heard from since the last CheckQuorum
        self.sent_commit = 0  # the commit index last sent, to know when to tell it more
        self.acked_round = 0  # latest heartbeat round it acknowledged (leases, ReadIndex)
        self.last_ack_tick = now_ticks  # when `match` last moved, to spot lost APPENDs

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, index: int, now_ticks: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = index
        self.snapshot_sent_tick = now_ticks

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflight.clear()
        self.inflight_bytes = 0

    def maybe_update(self, index: int, now_ticks: int) -> bool:
        """The follower's log matches ours up to `index`; False if that is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
            self.last_ack_tick = now_ticks
        self.next = max(self.next, index + 1)
        while self.inflight and self.inflight[0][0] <= index:
            self.inflight_bytes -= self.inflight.popleft()[1]
        return updated

    def maybe_decrease(self, rejected: int, hint: int) -> bool:
        """An APPEND after index `rejected` was refused; False if the refusal is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent(self, last_index: int, size_bytes: int, with_entries: bool, now_ticks: int) -> None:
        if self.state == ProgressState.REPLICATE:
            if with_entries:
                self.next = last_index + 1
                self.inflight.append((last_index, size_bytes, now_ticks))
                self.inflight_bytes += size_bytes
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def inflight_full(self, max_msgs: int, max_bytes: int) -> bool:
        return len(self.inflight) >= max_msgs or self.inflight_bytes >= max_bytes

    def paused(self, max_msgs: int, max_bytes: int) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflight_full(max_msgs, max_bytes)
        return True
