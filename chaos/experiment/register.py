"""The register workload: clients reading, writing and compare-and-setting single-attribute
items (key `pk` = k0, k1, ...; value attribute `val`) against DynamoDB endpoints, recording
every operation in a history.

Each client issues one request at a time at its share of the target rate (it does not catch up
in bursts after a slow request). Written values are unique (`9f2c1a-c3-17`: run 9f2c1a, client
3's 17th write), so a read names the write it saw. A cas expects the value the client last saw
for that key. Before the load, every key is set to a value of this run (`initialize`): what an
earlier run left in the table then reads as a value no one wrote.
"""
from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from chaos.workload.auth import StaticHeaders
from chaos.workload.bodies import KeySchema
from chaos.workload.client import DynamoClient, Reply
from chaos.workload.table import ensure_table

from chaos.experiment.history import FAIL, OK, SETUP_CLIENT, UNKNOWN, HistoryEntry
from chaos.experiment.spec import WorkloadSpec

__all__ = ["Clock", "RegisterWorkload", "classify", "key_names"]

VALUE_ATTR = "val"
KEY_ATTR = "pk"
_FINAL_RETRY_S = 0.2


def key_names(count: int) -> list[str]:
    return [f"k{i}" for i in range(count)]


def classify(kind: str, reply: Reply) -> tuple[str, str | None]:
    """(outcome, error) of a reply: 4xx definitely did not happen; 5xx and no answer may have."""
    if reply.ok:
        return OK, None
    if reply.transport or reply.status >= 500:
        return UNKNOWN, reply.error
    return FAIL, reply.error


@dataclass(frozen=True)
class Clock:
    """Seconds since the start of the run."""

    start: float

    def now(self) -> float:
        return time.monotonic() - self.start


def _item_key(key: str) -> dict[str, Any]:
    return {KEY_ATTR: {"S": key}}


def _value_of(reply: Reply) -> str | None:
    item = (reply.json() or {}).get("Item")
    if not item or VALUE_ATTR not in item:
        return None
    return str(item[VALUE_ATTR]["S"])


class _Client:
    def __init__(self, name: str, region: str, http: DynamoClient, keys: list[str],
                 spec: WorkloadSpec, rng: random.Random, clock: Clock,
                 record: Callable[[HistoryEntry], None], run_id: str = "") -> None:
        self.name, self.region, self.http, self.keys = name, region, http, keys
        self.run_id = run_id
        self.spec, self.rng, self.clock, self.record = spec, rng, clock, record
        self.known: dict[str, str | None] = {}  # key -> last value this client saw
        self.writes = 0
        self._kinds = [kind for kind, _ in spec.mix]
        self._weights = [share for _, share in spec.mix]

    async def run(self, stop: asyncio.Event) -> None:
        interval_s = self.spec.clients / self.spec.rate_ops_s
        next_s = self.clock.now() + self.rng.uniform(0, interval_s)  # spread the clients out
        while not stop.is_set():  # ends with the run: `stop` is set by the runner
            delay_s = next_s - self.clock.now()
            if delay_s > 0 and await _stopped_within(stop, delay_s):
                return
            next_s = max(next_s + interval_s, self.clock.now() - interval_s)
            await self.one()

    async def one(self) -> HistoryEntry:
        kind = self.rng.choices(self._kinds, self._weights)[0]
        key = self.rng.choice(self.keys)
        if kind == "read":
            return await self.read(key, self.spec.strong)
        value = self.next_value()
        if kind == "write":
            return await self.write(key, value)
        return await self._cas(key, self.known.get(key), value)

    def next_value(self) -> str:
        self.writes += 1
        return f"{self.run_id}-{self.name}-{self.writes}"

    async def read(self, key: str, consistent: bool, client: str | None = None) -> HistoryEntry:
        invoke = self.clock.now()
        reply = await self.http.call_json("GetItem", {
            "TableName": self.spec.table, "Key": _item_key(key), "ConsistentRead": consistent})
        outcome, error = classify("read", reply)
        value = _value_of(reply) if outcome == OK else None
        if outcome == OK:
            self.known[key] = value
        return self._record(client or self.name, key, "read", value, invoke, outcome, error,
                            consistent=consistent)

    async def write(self, key: str, value: str) -> HistoryEntry:
        invoke = self.clock.now()
        reply = await self.http.call_json("PutItem", {
            "TableName": self.spec.table,
            "Item": {**_item_key(key), VALUE_ATTR: {"S": value}}})
        outcome, error = classify("write", reply)
        if outcome == OK:
            self.known[key] = value
        return self._record(self.name, key, "write", value, invoke, outcome, error)

    async def _cas(self, key: str, expected: str | None, value: str) -> HistoryEntry:
        body: dict[str, Any] = {
            "TableName": self.spec.table, "Key": _item_key(key),
            "UpdateExpression": "SET #v = :new", "ExpressionAttributeNames": {"#v": VALUE_ATTR},
            "ExpressionAttributeValues": {":new": {"S": value}}}
        if expected is None:
            body["ConditionExpression"] = "attribute_not_exists(#v)"
        else:
            body["ConditionExpression"] = "#v = :old"
            body["ExpressionAttributeValues"][":old"] = {"S": expected}
        invoke = self.clock.now()
        reply = await self.http.call_json("UpdateItem", body)
        outcome, error = classify("cas", reply)
        if outcome == OK:
            self.known[key] = value
        return self._record(self.name, key, "cas", value, invoke, outcome, error,
                            expected=expected)

    def _record(self, client: str, key: str, kind: str, value: str | None, invoke: float,
                outcome: str, error: str | None, *, expected: str | None = None,
                consistent: bool = True) -> HistoryEntry:
        entry = HistoryEntry(client, self.region, key, kind, value, invoke, self.clock.now(),
                             outcome, expected, consistent, error)
        self.record(entry)
        return entry


async def _stopped_within(stop: asyncio.Event, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout_s)
        return True
    except asyncio.TimeoutError:
        return False


class RegisterWorkload:
    """Clients spread round-robin over the regions' endpoints.

        async with RegisterWorkload(spec, endpoints, clock, history.append) as load:
            await load.prepare()
            await load.run(stop)
            finals = await load.final_reads(deadline_s=30)
    """

    def __init__(self, spec: WorkloadSpec, endpoints: dict[str, str], clock: Clock,
                 record: Callable[[HistoryEntry], None]) -> None:
        self.spec, self.endpoints, self.clock, self.record = spec, endpoints, clock, record
        self.regions = list(endpoints)
        self.run_id = secrets.token_hex(3)  # values differ from every earlier run's
        self._http: dict[str, DynamoClient] = {}

    async def __aenter__(self) -> RegisterWorkload:
        for region, url in self.endpoints.items():
            client = DynamoClient(url, StaticHeaders(region), self.spec.clients + 4,
                                  self.spec.timeout_s)
            self._http[region] = await client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._http.values():
            await client.__aexit__(None, None, None)
        self._http.clear()

    def home_keys(self, region: str) -> list[str]:
        keys = key_names(self.spec.keys)
        if self.spec.key_ownership == "shared" or len(self.regions) == 1:
            return keys
        index = self.regions.index(region)
        return [k for i, k in enumerate(keys) if i % len(self.regions) == index] or keys

    def http(self, region: str) -> DynamoClient:
        return self._http[region]

    async def prepare(self) -> None:
        """Create the table in the first region if it is missing, wait until it is ACTIVE."""
        await ensure_table(self._http[self.regions[0]], self.spec.table, True,
                           KeySchema(hash_name=KEY_ATTR, range_name=None))

    async def make_global(self, deadline_s: float = 30.0) -> str | None:
        """Add a replica of the table in every other region and wait until each region has
        it; None if done, else why not (the cluster has no global tables yet, say)."""
        if len(self.regions) < 2:
            return "global tables need at least two regions"
        table = self.spec.table
        reply = await self._http[self.regions[0]].call_json("DescribeTable", {"TableName": table})
        have = {r.get("RegionName") for r in (reply.json() or {}).get("Table", {})
                .get("Replicas", [])} if reply.ok else set()
        updates = [{"Create": {"RegionName": r}} for r in self.regions[1:] if r not in have]
        if updates:
            reply = await self._http[self.regions[0]].call_json(
                "UpdateTable", {"TableName": table, "ReplicaUpdates": updates})
            if not reply.ok:
                body = reply.body[:200].decode(errors="replace")
                return f"UpdateTable ReplicaUpdates failed: {reply.error} {body}"
        for region in self.regions[1:]:
            if not await self._table_appears(region, deadline_s):
                return (f"global tables: the replica of {table} never appeared in {region} "
                        f"within {deadline_s:g} s of UpdateTable ReplicaUpdates")
        return None

    async def _table_appears(self, region: str, deadline_s: float) -> bool:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:  # bounded by the deadline
            reply = await self._http[region].call_json("DescribeTable",
                                                       {"TableName": self.spec.table})
            if reply.ok and reply.json()["Table"].get("TableStatus", "ACTIVE") == "ACTIVE":
                return True
            await asyncio.sleep(0.5)
        return False

    def _client(self, index: int, rng: random.Random) -> _Client:
        region = self.regions[index % len(self.regions)]
        return _Client(f"c{index}", region, self._http[region], self.home_keys(region),
                       self.spec, rng, self.clock, self.record, self.run_id)

    async def initialize(self, deadline_s: float) -> list[str]:
        """Set every key to a value of this run, each from its home region (shared keys from the
        first), retrying until acknowledged or the deadline; the keys that never were."""
        shared = self.spec.key_ownership == "shared" and len(self.regions) > 1
        end = self.clock.now() + deadline_s
        missing = []
        for region in self.regions[:1] if shared else self.regions:
            writer = _Client(SETUP_CLIENT, region, self._http[region], [], self.spec,
                             random.Random(0), self.clock, self.record, self.run_id)
            for key in self.home_keys(region):
                entry = await writer.write(key, writer.next_value())
                while entry.outcome != OK and self.clock.now() < end:  # bounded by the deadline
                    await asyncio.sleep(_FINAL_RETRY_S)
                    entry = await writer.write(key, writer.next_value())
                if entry.outcome != OK:
                    missing.append(key)
        return missing

    async def run(self, stop: asyncio.Event) -> None:
        master = random.Random(self.spec.seed)
        clients = [self._client(i, random.Random(master.getrandbits(64)))
                   for i in range(self.spec.clients)]
        await asyncio.gather(*(client.run(stop) for client in clients))

    async def final_reads(self, region: str, deadline_s: float,
                          consistent: bool = True) -> dict[str, str | None]:
        """A read of every key from `region`, retried until it succeeds or the deadline passes
        (keys never read are left out). Recorded in the history as client `final-REGION`."""
        reader = _Client(f"final-{region}", region, self._http[region], [], self.spec,
                         random.Random(0), self.clock, self.record, self.run_id)
        end = self.clock.now() + deadline_s
        values: dict[str, str | None] = {}
        for key in key_names(self.spec.keys):
            while self.clock.now() < end:  # bounded by the deadline
                entry = await reader.read(key, consistent)
                if entry.outcome == OK:
                    values[key] = entry.value
                    break
                await asyncio.sleep(_FINAL_RETRY_S)
        return values
