"""Node-level liveness for quiesced groups: what a node's driver knows about each peer node.

A quiesced follower hears nothing from its group until the group is used again, so it cannot
tell an idle leader from a dead one by itself. Its node can. A node that leads quiesced groups
pings the nodes of their followers every `ping_ticks` (a tiny message, riding in a batch that
goes there anyway when there is one), all of them on the same tick; a node counts a peer dead
once no ping came from it for `timeout_ticks`, and the driver then wakes the quiesced followers
of the groups that peer leads, crediting them the silent ticks (RaftCore.wake). A few pings per
node pair per second replace the heartbeats of every idle group.

Only pings count, not other traffic: then every follower of a dead node measures its silence
from the same ping and they all wake within about a tick of each other, so the first to
campaign does not find the others still keeping their promise to the dead leader (which would
cost an extra election timeout). A ping carries the sender's incarnation (random per process
start): a new one means the peer restarted and its replicas forgot they led anything, so its
quiesced followers are woken at once rather than after a timeout.

Pure bookkeeping, like the core: no clock, times are the node's tick count. A wrong verdict
costs a needless wake-up (or a late election), never safety: the core credits a follower no
more ticks than it actually skipped.
"""
from __future__ import annotations

from replication.raft.config import RaftConfig


class PeerLiveness:
    __slots__ = ("ping_ticks", "timeout_ticks", "_heard", "_incarnations", "_last_ping")

    def __init__(self, ping_ticks: int, timeout_ticks: int) -> None:
        if ping_ticks < 1 or timeout_ticks <= ping_ticks:
            raise ValueError("need 1 <= ping_ticks < timeout_ticks")
        self.ping_ticks = ping_ticks
        self.timeout_ticks = timeout_ticks
        self._heard: dict[str, int] = {}  # peer -> tick of its last ping
        self._incarnations: dict[str, bytes] = {}
        self._last_ping = -ping_ticks

    @classmethod
    def for_raft(cls, raft: RaftConfig) -> "PeerLiveness":
        """Dead after an election timeout without a ping (when an awake follower would
        campaign); a ping every half of it, so one lost ping is not yet a death."""
        timeout = raft.election_ticks
        return cls(max(1, timeout // 2), max(2, timeout))

    def ping_due(self, now_ticks: int) -> bool:
        """Is this the tick to ping (every peer at once)? If so, it counts as done."""
        if now_ticks - self._last_ping < self.ping_ticks:
            return False
        self._last_ping = now_ticks
        return True

    def restarted(self, peer: str, incarnation: bytes) -> bool:
        """Does a ping with `incarnation` come from a new process of `peer`?"""
        known = self._incarnations.get(peer)
        return known is not None and known != incarnation

    def heard(self, peer: str, now_ticks: int, incarnation: bytes = b"") -> None:
        """A ping from `peer` arrived."""
        self._heard[peer] = now_ticks
        self._incarnations[peer] = incarnation

    def alive(self, peer: str, now_ticks: int) -> None:
        """Something just showed `peer` alive (the QUIESCE heartbeat that parks a follower):
        its silence starts now, not at its last ping, which may be long ago or never."""
        self._heard[peer] = max(self._heard.get(peer, 0), now_ticks)

    def silent_ticks(self, peer: str, now_ticks: int) -> int:
        """Ticks since the last ping from `peer` (since tick 0, the start, if none came)."""
        return now_ticks - self._heard.get(peer, 0)

    def dead(self, peer: str, now_ticks: int) -> bool:
        return self.silent_ticks(peer, now_ticks) >= self.timeout_ticks


__all__ = ["PeerLiveness"]
