"""Reading DynamoDB Streams through boto3 the way a consumer does, and asking the nodes for
their shards' digests (admin `Digest`)."""
from __future__ import annotations

import json
import uuid
from typing import Any

from tests.e2e.cluster import Cluster, wait_active
from tests.e2e.failover import digests

MAX_CALLS = 2000  # GetRecords calls one shard read may make (bounds every loop)


def make_table(ddb: Any, view: str | None, prefix: str = "streamed",
               range_key: bool = False) -> tuple[str, str | None]:
    """A new table (pk S [, sk N]) with a stream of `view` (None: no stream); (name, arn)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    definitions = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        definitions.append({"AttributeName": "sk", "AttributeType": "N"})
    extra = ({"StreamSpecification": {"StreamEnabled": True, "StreamViewType": view}}
             if view else {})
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=keys,
                     AttributeDefinitions=definitions, **extra)
    return name, wait_active(ddb, name).get("LatestStreamArn")


def shard_ids(streams: Any, arn: str, page: int = 100) -> list[str]:
    """Every shard of the stream, paging DescribeStream by `page` shards."""
    found: list[str] = []
    start: dict[str, str] = {}
    for _ in range(1000):
        description = streams.describe_stream(StreamArn=arn, Limit=page, **start)
        found += [s["ShardId"] for s in description["StreamDescription"]["Shards"]]
        last = description["StreamDescription"].get("LastEvaluatedShardId")
        if last is None:
            return found
        start = {"ExclusiveStartShardId": last}
    raise AssertionError("DescribeStream paging did not end")


def read_iterator(streams: Any, iterator: str, limit: int | None = None,
                  ) -> tuple[list[dict[str, Any]], str | None]:
    """Follow NextShardIterator from `iterator` until a call returns no records; (records,
    the iterator to go on with)."""
    records: list[dict[str, Any]] = []
    for _ in range(MAX_CALLS):
        answer = streams.get_records(ShardIterator=iterator, **({"Limit": limit} if limit else {}))
        records += answer["Records"]
        following = answer.get("NextShardIterator")
        if not answer["Records"] or following is None:
            return records, following
        iterator = following
    raise AssertionError("a shard read did not end")


def read_shard(streams: Any, arn: str, shard: str, kind: str = "TRIM_HORIZON",
               limit: int | None = None, **extra: Any) -> list[dict[str, Any]]:
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=kind,
                                          **extra)["ShardIterator"]
    return read_iterator(streams, iterator, limit)[0]


def read_stream(streams: Any, arn: str) -> dict[str, list[dict[str, Any]]]:
    """shard id -> its records from the trim horizon."""
    return {shard: read_shard(streams, arn, shard) for shard in shard_ids(streams, arn)}


def key_of(record: dict[str, Any]) -> str:
    return json.dumps(record["dynamodb"]["Keys"], sort_keys=True)


def shards_identical(cluster: Cluster, table: str) -> bool:
    """Every partition's three replicas hold the same items and the same change records."""
    groups = digests(cluster)
    return bool(groups) and all(
        len(by_node) == 3
        and len({(body["digest"], body["streams_digest"]) for body in by_node.values()}) == 1
        for by_node in groups.values())
