"""`dynalab demo`: a guided tour of global tables in the terminal, in under a minute.

    dynalab demo                      start a two-region cluster of its own, tour, stop it
    dynalab demo --data-dir DIR       use the cluster running from DIR (or start one there)
    dynalab demo --step               wait for Enter between steps

The story: create a table in one region and make it global; write in one region and read the
item in the other, with the measured lag; write the same key in both regions at once and see
which write won and why ((timestamp, region) order); cut the link between the regions (a chaos
partition when the topology has chaos on, else SIGSTOP of both replicators), keep writing on
both sides, heal, and watch the regions converge. The demo's table is deleted at the end, and a
cluster it started is stopped (and its temporary data dir removed).

It talks to the cluster as any client does (boto3, the DynamoDB endpoints in cluster.json), plus
`DynalabItemVersion`, a dynalab-only operation that shows an item's hidden (ts, origin).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import boto3
from botocore.config import Config

from deploy import lifecycle
from deploy.specs import build_specs
from deploy.supervisor import Supervisor

__all__ = ["main", "Demo"]

T = TypeVar("T")
_WIDTH = 78


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dynalab demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="a running cluster's data dir (default: "
                        "start a cluster of its own in a temporary dir)")
    parser.add_argument("--step", action="store_true", help="wait for Enter between steps")
    parser.add_argument("--cut-s", type=float, default=4.0,
                        help="how long the regions stay cut off from each other")
    args = parser.parse_args(argv[1:])
    started = time.monotonic()
    try:
        with _cluster(args.data_dir) as data_dir:
            Demo(data_dir, pause=_enter if args.step else None, cut_s=args.cut_s).run()
    except (lifecycle.LifecycleError, DemoError) as error:
        print(f"dynalab demo: {error}", file=sys.stderr)
        return 1
    print(f"\nDemo finished in {time.monotonic() - started:.0f} s.")
    return 0


class DemoError(RuntimeError):
    """The cluster did not do what the story needs; the message says what."""


def _enter() -> None:
    input("   (Enter for the next step) ")


@contextlib.contextmanager
def _cluster(data_dir: Path | None) -> Iterator[Path]:
    """The data dir of a running cluster: the one given if it runs, else one started here (and
    stopped at the end; a temporary dir is also removed)."""
    if data_dir is not None and Supervisor(data_dir).running():
        print(f"Using the cluster running from {data_dir}.")
        yield data_dir
        return
    temporary = data_dir is None
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="dynalab-demo-")) / "data"
    print(f"Starting a two-region cluster in {data_dir} ...", flush=True)
    topology = lifecycle.prepare(data_dir)
    try:
        lifecycle.up(data_dir, topology, build_specs, detach=True, deadline_s=60.0)
        yield data_dir
    finally:
        print("\nStopping the demo's cluster ...", flush=True)
        lifecycle.down(data_dir)
        if temporary:
            shutil.rmtree(data_dir.parent, ignore_errors=True)


@dataclass(frozen=True)
class _Region:
    name: str
    endpoint: str
    replicator: str
    client: Any


class Demo:
    def __init__(self, data_dir: Path, pause: Callable[[], None] | None = None,
                 cut_s: float = 4.0, out: Callable[[str], None] = print) -> None:
        info = json.loads((Path(data_dir) / "cluster.json").read_text(encoding="utf-8"))
        regions = list(info["regions"].items())
        if len(regions) < 2:
            raise DemoError("the demo needs a cluster with two regions")
        self._data_dir = Path(data_dir)
        self.a, self.b = (_Region(name, r["endpoint_url"], r["replicator"]["id"],
                                  _client(name, r["endpoint_url"])) for name, r in regions[:2])
        self.table = f"demo-{uuid.uuid4().hex[:8]}"
        self._pause = pause
        self._cut_s = cut_s
        self._out = out
        self._step = 0
        self._heal: Callable[[], None] | None = None

    def run(self) -> None:
        try:
            self.create_global_table()
            self.write_here_read_there()
            self.concurrent_writes()
            self.cut_and_converge()
        finally:
            self._cleanup()

    # -- the steps

    def create_global_table(self) -> None:
        a, b = self.a, self.b
        self._header(f"Create a table in {a.name} and make it global")
        self._say(f"CreateTable {self.table} in {a.name}, then UpdateTable with ReplicaUpdates "
                  f"[{{Create: {{RegionName: {b.name}}}}}], as with DynamoDB global tables "
                  "(version 2019.11.21). dynalab creates the table in the other region through "
                  "its router, turns on a NEW_AND_OLD_IMAGES stream, and the replicators start "
                  "shipping changes both ways.")
        a.client.create_table(TableName=self.table, BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk",
                                                     "AttributeType": "S"}])
        _wait(lambda: _status(a.client, self.table) == "ACTIVE", "the table ACTIVE", 20)
        a.client.update_table(TableName=self.table,
                              ReplicaUpdates=[{"Create": {"RegionName": b.name}}])
        started = time.monotonic()
        replicas = _wait(lambda: self._all_active(), "both replicas ACTIVE", 30)
        self._say(f"Replicas after {time.monotonic() - started:.1f} s: " + ", ".join(
            f"{r['RegionName']} {r['ReplicaStatus']}" for r in replicas))

    def write_here_read_there(self) -> None:
        a, b = self.a, self.b
        self._header(f"Write in {a.name}, read in {b.name}")
        self._say(f"Each PutItem goes to {a.name}'s partition leader; {a.name}'s replicator "
                  f"tails the partition's change records and ships them to {b.name}'s, which "
                  "applies them there. We time from the write's answer until a read in "
                  f"{b.name} sees it.")
        lags_ms = []
        for i in range(5):
            item = {"pk": {"S": f"hello-{i}"}, "msg": {"S": f"hi from {a.name}"}}
            a.client.put_item(TableName=self.table, Item=item)
            written = time.monotonic()
            _wait(lambda: _get(b.client, self.table, item["pk"]) == item, "the item there", 10,
                  interval_s=0.005)
            lags_ms.append((time.monotonic() - written) * 1000)
        self._say("Seen in {} after: {} ms (median {:.0f} ms).".format(
            b.name, ", ".join(f"{ms:.0f}" for ms in lags_ms), statistics.median(lags_ms)))

    def concurrent_writes(self) -> None:
        a, b = self.a, self.b
        self._header("The same key written in both regions at once")
        self._say("Two clients write pk=contested at the same moment, one per region. Both "
                  "writes succeed locally; then the replicators cross them over. Every item "
                  "version carries a hybrid-logical-clock timestamp (wall ms, counter) and the "
                  "region that wrote it; every replica keeps the greater (timestamp, region), "
                  "so all regions end with the same winner, whatever order they saw them in.")
        key = {"pk": {"S": "contested"}}
        barrier = threading.Barrier(2)

        def write(region: _Region) -> None:
            barrier.wait()
            region.client.put_item(TableName=self.table,
                                   Item={**key, "writer": {"S": region.name}})
        threads = [threading.Thread(target=write, args=(r,)) for r in (a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        # Read at once, before the replicators cross the writes over (~0.1 s): each region
        # probably still shows its own write.
        local = {r.name: self._version(key, r) for r in (a, b)}
        final = _wait(lambda: self._agreed(key), "both regions to agree", 15)
        version = final["Version"]
        self._say(f"Both regions now hold writer={final['Item']['writer']['S']} with version "
                  f"ts={version['ts']} region={version['origin']}.")
        if local[a.name] != local[b.name]:
            self._say("Right after the writes, before replication: " + "; ".join(
                f"{name} had ts={v['Version']['ts']} ({v['Version']['origin']})"
                for name, v in local.items()) + ". The greater one won in both regions.")
        else:
            self._say("The other write had a smaller (ts, region): an earlier timestamp, or "
                      "the same one and a region name that sorts first.")
        self._say("Why an HLC and not the wall clock: a write that follows another one of the "
                  "same item always gets a larger timestamp than the stored one, even when its "
                  "region's clock is behind, so a causally later write can never lose.")

    def cut_and_converge(self) -> None:
        a, b = self.a, self.b
        self._header(f"Cut the link between {a.name} and {b.name}, keep writing, heal")
        how = self._cut()
        self._say(f"Cut: {how}. Both regions keep taking writes; what they write waits in "
                  f"their change streams. For {self._cut_s:.0f} s each region writes its own "
                  "keys, and both write pk=contested in turn.")
        counts = self._write_while_cut()
        versions = {r.name: self._version({"pk": {"S": "contested"}}, r) for r in (a, b)}
        for region in (a, b):
            seen = versions[region.name]
            self._say(f"  {region.name}: {counts[region.name]} writes; sees "
                      f"{_count(region.client, self.table)} items; contested = "
                      f"{seen['Item']['writer']['S']} at ts={seen['Version']['ts']}")
        self._show_pending()
        self._say("Heal, and time until both regions hold exactly the same items.")
        healed = time.monotonic()
        self._heal_link()
        _wait(lambda: _scan(a.client, self.table) == _scan(b.client, self.table),
              "the regions to converge", 30, interval_s=0.1)
        elapsed = time.monotonic() - healed
        winner = max(versions.values(), key=lambda v: (tuple(v["Version"]["ts"]),
                                                       v["Version"]["origin"]))
        final = self._version({"pk": {"S": "contested"}}, a)
        assert_same = final["Item"] == winner["Item"]
        self._say(f"Converged {elapsed:.1f} s after healing: {_count(a.client, self.table)} "
                  f"items in each region. contested = {final['Item']['writer']['S']}, the "
                  f"greater of the two versions above" + ("" if assert_same else
                                                          " (NOT the expected winner!)") + ".")
        if not assert_same:
            raise DemoError(f"contested converged to {final}, expected {winner}")

    # -- the link

    def _cut(self) -> str:
        data_dir, replicators = self._data_dir, [r.replicator for r in (self.a, self.b)]
        if (data_dir / "links.json").exists():
            out = _dynalab(data_dir, "chaos", "partition", self.a.name, self.b.name)
            match = re.search(r"active as (\S+)", out)
            if match is None:
                raise DemoError(f"dynalab chaos partition said: {out}")
            fault = match.group(1)

            def undo() -> None:
                _dynalab(data_dir, "chaos", "undo", fault)
            self._heal = undo
            return f"the cross-region proxies are off (dynalab chaos partition, fault {fault})"
        for replicator in replicators:
            lifecycle.pause(data_dir, replicator)

        def resume() -> None:
            for replicator in replicators:
                lifecycle.resume(data_dir, replicator)
        self._heal = resume
        return ("both replicators are paused with SIGSTOP (this topology has chaos off; "
                "with chaos on, the demo cuts the proxies instead)")

    def _heal_link(self) -> None:
        heal, self._heal = self._heal, None
        if heal is not None:
            heal()

    def _write_while_cut(self) -> dict[str, int]:
        counts = {self.a.name: 0, self.b.name: 0}
        deadline = time.monotonic() + self._cut_s
        for round_ in range(10_000):  # bounded; the deadline ends it much sooner
            if time.monotonic() >= deadline:
                break
            for region in (self.a, self.b):
                prefix = region.name.split("-")[0]
                region.client.put_item(TableName=self.table, Item={
                    "pk": {"S": f"{prefix}-{round_}"}, "writer": {"S": region.name}})
                region.client.put_item(TableName=self.table, Item={
                    "pk": {"S": "contested"}, "writer": {"S": region.name},
                    "round": {"N": str(round_)}})
                counts[region.name] += 2
            time.sleep(0.05)
        return counts

    def _show_pending(self) -> None:
        for region in (self.a, self.b):
            path = self._data_dir / "replication" / f"{region.name}.json"
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if time.time() * 1000 - report.get("updated_ms", 0) > 3000:
                continue  # a paused replicator cannot report
            for pair, view in report.get("pairs", {}).items():
                age = view.get("oldest_unapplied_age_ms")
                self._say(f"  lag {pair}: {view.get('pending_records')} records pending, "
                          f"oldest {age / 1000 if age else 0:.1f} s old")

    # -- helpers

    def _all_active(self) -> list[dict[str, Any]] | None:
        replicas: list[dict[str, Any]] = []
        for region in (self.a, self.b):
            try:
                table = region.client.describe_table(TableName=self.table)["Table"]
            except region.client.exceptions.ResourceNotFoundException:
                return None
            replicas = table.get("Replicas") or []
            if table["TableStatus"] != "ACTIVE" or len(replicas) < 2 or any(
                    r["ReplicaStatus"] != "ACTIVE" for r in replicas):
                return None
        return replicas

    def _version(self, key: dict[str, Any], region: _Region) -> dict[str, Any]:
        return _internal(region.endpoint, region.name, "DynalabItemVersion",
                         {"TableName": self.table, "Key": key})

    def _agreed(self, key: dict[str, Any]) -> dict[str, Any] | None:
        seen = [self._version(key, r) for r in (self.a, self.b)]
        return seen[0] if seen[0] and seen[0] == seen[1] else None

    def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self._heal_link()
        self._header("Clean up")
        try:
            if self.b.name in [r["RegionName"] for r in self.a.client.describe_table(
                    TableName=self.table)["Table"].get("Replicas", [])]:
                self.a.client.update_table(TableName=self.table,
                                           ReplicaUpdates=[{"Delete": {"RegionName": self.b.name}}])
            self.a.client.delete_table(TableName=self.table)
            _wait(lambda: all(self.table not in r.client.list_tables()["TableNames"]
                              for r in (self.a, self.b)), "the table gone", 30)
            self._say(f"Deleted {self.table} in both regions.")
        except Exception as error:  # noqa: BLE001 - say what is left behind, then go on
            self._say(f"Could not delete {self.table}: {error}")

    def _header(self, title: str) -> None:
        if self._step and self._pause is not None:
            self._pause()
        self._step += 1
        self._out(f"\n== {self._step}. {title} " + "=" * max(0, _WIDTH - len(title) - 7))

    def _say(self, text: str) -> None:
        for line in _wrap(text):
            self._out(line)


# -- plumbing ------------------------------------------------------------------------------------

def _client(region: str, endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="demo", aws_secret_access_key="demo",
                        config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                      connect_timeout=5, read_timeout=20))


def _internal(endpoint: str, region: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """A dynalab-only operation on a DynamoDB endpoint (boto3 knows only DynamoDB's)."""
    request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), method="POST", headers={
        "X-Amz-Target": f"DynamoDB_20120810.{operation}",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": f"AWS4-HMAC-SHA256 Credential=demo/20200101/{region}/dynamodb/"
                         "aws4_request, SignedHeaders=host, Signature=0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read() or b"{}"))


def _dynalab(data_dir: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dynalab.cli", args[0], "--data-dir",
                           str(data_dir), *args[1:]], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise DemoError(f"dynalab {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _status(client: Any, table: str) -> str:
    return str(client.describe_table(TableName=table)["Table"]["TableStatus"])


def _get(client: Any, table: str, pk: dict[str, Any]) -> dict[str, Any] | None:
    return client.get_item(TableName=table, Key={"pk": pk}).get("Item")


def _scan(client: Any, table: str) -> dict[str, Any]:
    items: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    for _ in range(1000):  # bounded pagination
        page = client.scan(**kwargs)
        items.update({i["pk"]["S"]: i for i in page["Items"]})
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return items


def _count(client: Any, table: str) -> int:
    return len(_scan(client, table))


def _wait(check: Callable[[], T | None], what: str, timeout_s: float,
          interval_s: float = 0.05) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise DemoError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _wrap(text: str) -> list[str]:
    words, lines, line = text.split(" "), [], "   "
    for word in words:
        if len(line) + len(word) + 1 > _WIDTH and line.strip():
            lines.append(line.rstrip())
            line = "   "
        line += word + " "
    lines.append(line.rstrip())
    return lines
