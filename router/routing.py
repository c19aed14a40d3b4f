"""Which node gets a request, and what to do when it cannot answer.

Placement is computed locally from the topology (`dynalab.ring`, pure), so no request needs a
metadata round trip. Leaders are learned: the first guess for a group is its first replica,
corrected by NotLeader hints and remembered per group.

* `call_leader`: writes, consistent reads and metadata. NotLeader -> the hinted leader (no wait);
  Unavailable (no leader yet, or the node unreachable) -> the next replica after a backoff. A
  request that may have been applied (stream lost, timeout) is repeated only when the caller says
  it is idempotent; otherwise its outcome is unknown and the client gets a 500, as DynamoDB
  answers when it cannot tell.
* `call_replica`: eventually consistent reads. The replica in the router's AZ first, then the
  others.

Every loop is bounded twice: by `max_attempts` and by the request's deadline. Node errors that
are the client's (ValidationException, ConditionalCheckFailedException, ...) become their
dynalab.errors types here; anything a node says that is not one of those is a ServerError.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from dynalab import errors
from dynalab.layout import item_token
from dynalab.ring import META_GROUP, Partition, PartitionMap, RingSnapshot, meta_voters
from dynalab.topology import Topology
from dynalab.values import Item, KeySchema
from router.nodes import (LOST, NOT_LEADER, TIMEOUT, UNAVAILABLE, Reply, StorageRequest,
                          StorageTransport)

__all__ = ["RetryConfig", "Routing"]

log = logging.getLogger(__name__)


# Node answers whose error_type names one of these become that exception; the rest are bugs.
_CLIENT_ERRORS: dict[str, type[errors.DynalabError]] = {
    name: cls for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type) and issubclass(cls, errors.ClientError)
}
_RETRYABLE = (UNAVAILABLE, NOT_LEADER, LOST, TIMEOUT)
# Deadlines and suspicion are kept on the monotonic clock (what asyncio's loop.time() reads):
# asyncio.get_running_loop() is a getpid() system call per use on Python 3.11.
_now = time.monotonic


@dataclass(frozen=True)
class RetryConfig:
    deadline_ms: int = 5000          # a whole request, retries included
    attempt_timeout_ms: int = 2000   # one try on one node
    max_attempts: int = 12
    backoff_ms: tuple[int, int] = (10, 250)
    suspect_ms: int = 3000           # a replica that failed is tried last for this long


class Routing:
    """Partition lookup and the retrying calls to partition groups of one region."""

    def __init__(self, transport: StorageTransport, topology: Topology, region: str, az: str,
                 config: RetryConfig | None = None) -> None:
        self.transport = transport
        self.topology = topology
        self.az = az
        self.config = config or RetryConfig()
        self.pmap = PartitionMap.build(RingSnapshot.for_region(topology, region), topology)
        self.meta_group = Partition(META_GROUP, 0, 0, meta_voters(topology, region))
        self._leaders: dict[str, str] = {}
        self._suspect_until: dict[str, float] = {}  # node -> time.monotonic()
        self._az_order: dict[str, tuple[tuple[str, ...], list[str]]] = {}  # see _read_order

    def partition_for(self, key: Item, schema: KeySchema) -> Partition:
        return self.pmap.for_token(item_token(key, schema))

    def leader_of(self, group: Partition) -> str:
        return self._leaders.get(group.id) or group.replicas[0]

    async def meta(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call_leader(self.meta_group, "Meta", body,
                                      idempotent=body["op"] == "Catalog")

    async def call_leader(self, group: Partition, operation: str, body: dict[str, Any], *,
                          idempotent: bool, deadline_ms: int | None = None,
                          held_ms: int | None = None) -> dict[str, Any]:
        """Send to the group's leader, following NotLeader hints; see the module doc. A request
        the node holds on purpose (a catalog watch, a long-polled StreamRead) passes `held_ms`,
        longer than it may be held: its deadline and each attempt's timeout."""
        deadline = _now() + (held_ms or deadline_ms or self.config.deadline_ms) / 1000
        attempt_ms = held_ms or self.config.attempt_timeout_ms
        request = StorageRequest(operation, group.id, orjson.dumps(body), self.pmap.epoch)
        target = self.leader_of(group)
        backoff_ms = self.config.backoff_ms[0]
        last = "no attempt"
        for _ in range(self.config.max_attempts):
            reply = await self._attempt(target, request, deadline, attempt_ms)
            if reply is None:
                break
            if reply.ok:
                self._leaders[group.id] = target
                return _decode(reply)
            last = f"{target}: {reply.error_type} {reply.error_message}".strip()
            if reply.error_type in (LOST, TIMEOUT) and not idempotent:
                raise errors.ServerError(
                    f"The outcome of the request is unknown (node {target}: {reply.error_type})")
            if reply.error_type not in _RETRYABLE:
                raise _error(reply)
            hint = reply.leader_hint
            if reply.error_type == NOT_LEADER and hint in group.replicas and hint != target:
                target = self._leaders[group.id] = hint
                continue  # a named leader is worth trying at once
            target = self._leaders[group.id] = _next_replica(group, target)
            backoff_ms = await _backoff(backoff_ms, self.config.backoff_ms[1], deadline)
        raise errors.Unavailable(f"partition {group.id} has no reachable leader ({last})")

    async def call_replica(self, group: Partition, operation: str,
                           body: dict[str, Any]) -> dict[str, Any]:
        """An eventually consistent read: the same-AZ replica first, then the others."""
        deadline = _now() + self.config.deadline_ms / 1000
        request = StorageRequest(operation, group.id, orjson.dumps(body), self.pmap.epoch)
        order = self._read_order(group)
        backoff_ms = self.config.backoff_ms[0]
        last = "no attempt"
        for attempt in range(self.config.max_attempts):
            target = order[attempt % len(order)]
            reply = await self._attempt(target, request, deadline, self.config.attempt_timeout_ms)
            if reply is None:
                break
            if reply.ok:
                return _decode(reply)
            last = f"{target}: {reply.error_type} {reply.error_message}".strip()
            if reply.error_type not in _RETRYABLE:
                raise _error(reply)
            if attempt % len(order) == len(order) - 1:  # every replica failed once: wait
                backoff_ms = await _backoff(backoff_ms, self.config.backoff_ms[1], deadline)
        raise errors.Unavailable(f"partition {group.id} has no reachable replica ({last})")

    async def _attempt(self, target: str, request: StorageRequest, deadline: float,
                       attempt_timeout_ms: int) -> Reply | None:
        remaining_ms = int((deadline - _now()) * 1000)
        if remaining_ms <= 0:
            return None
        reply = await self.transport.execute(target, request,
                                             min(remaining_ms, attempt_timeout_ms))
        if reply.error_type in (UNAVAILABLE, LOST, TIMEOUT):
            self._suspect_until[target] = _now() + self.config.suspect_ms / 1000
        return reply

    def _read_order(self, group: Partition) -> list[str]:
        """Healthy replicas before suspect ones; within each, the router's AZ first (ties in
        replica order). The AZ order is fixed per group and kept; the result is not to be
        changed by the caller."""
        cached = self._az_order.get(group.id)
        if cached is None or cached[0] is not group.replicas:
            cached = self._az_order[group.id] = (group.replicas, sorted(
                group.replicas, key=lambda node: self.topology.az_of(node) != self.az))
        order = cached[1]
        suspect = self._suspect_until
        if suspect:
            now = _now()
            if any(suspect.get(node, 0.0) > now for node in order):
                return sorted(order, key=lambda node: suspect.get(node, 0.0) > now)  # stable
        return order


def _next_replica(group: Partition, current: str) -> str:
    replicas = group.replicas
    if current not in replicas:
        return replicas[0]
    return replicas[(replicas.index(current) + 1) % len(replicas)]


async def _backoff(backoff_ms: int, max_ms: int, deadline: float) -> int:
    remaining = deadline - _now()
    await asyncio.sleep(max(0.0, min(backoff_ms / 1000, remaining)))
    return min(backoff_ms * 2, max_ms)


def _decode(reply: Reply) -> dict[str, Any]:
    if not reply.body:
        return {}
    try:
        decoded = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        raise errors.ServerError("a storage node sent a malformed answer") from None
    if not isinstance(decoded, dict):
        raise errors.ServerError("a storage node sent a malformed answer")
    return decoded


def _error(reply: Reply) -> errors.DynalabError:
    """The exception a node's error answer stands for."""
    cls = _CLIENT_ERRORS.get(reply.error_type)
    if cls is None:
        log.error("node error %s: %s", reply.error_type, reply.error_message)
        return errors.ServerError("Internal server error")
    if cls is errors.ConditionalCheckFailedException:
        item = _decode(reply).get("Item") if reply.body else None
        return errors.ConditionalCheckFailedException(
            reply.error_message or "The conditional request failed", item=item or None)
    return cls(reply.error_message)
