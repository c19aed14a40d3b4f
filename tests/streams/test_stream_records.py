"""DynamoDB Streams through the boto3 `dynamodbstreams` client against a real cluster: the stream
shows in DescribeTable/ListStreams/DescribeStream, every change of every item appears once, in
order, with the images of the view type; writes that change nothing make no record; each kind
of shard iterator; expiry and the errors of bad requests."""
from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dynalab.links import clock_offset_path
from router.streams import ITERATOR_TTL_MS, ShardIterator
from tests.e2e.cluster import Cluster, wait_for
from tests.streams.helpers import (key_of, make_table, read_iterator, read_shard, read_stream,
                                   shard_ids)

pytestmark = pytest.mark.cluster

VIEWS = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
PARTITIONS = 12  # 3 nodes x 4 vnodes


def code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def ddb(stream_cluster: Cluster) -> Any:
    return stream_cluster.client()


@pytest.fixture(scope="module")
def streams(stream_cluster: Cluster) -> Any:
    return stream_cluster.client(service="dynamodbstreams")


def test_the_stream_is_described_listed_and_has_one_shard_per_partition(
        ddb: Any, streams: Any) -> None:
    name, arn = make_table(ddb, "NEW_AND_OLD_IMAGES")
    table = ddb.describe_table(TableName=name)["Table"]
    label = table["LatestStreamLabel"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", label)
    assert arn == f"arn:aws:dynamodb:us-east-1:000000000000:table/{name}/stream/{label}"
    assert table["StreamSpecification"] == {"StreamEnabled": True,
                                            "StreamViewType": "NEW_AND_OLD_IMAGES"}
    listed = streams.list_streams(TableName=name)["Streams"]
    assert listed == [{"StreamArn": arn, "TableName": name, "StreamLabel": label}]
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert (description["StreamStatus"], description["StreamViewType"],
            description["TableName"]) == ("ENABLED", "NEW_AND_OLD_IMAGES", name)
    assert description["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    shards = description["Shards"]
    assert len(shards) == PARTITIONS and "LastEvaluatedShardId" not in description
    for shard in shards:
        assert re.fullmatch(r"shardId-\d{20}-[0-9a-f]{16}", shard["ShardId"])
        assert "ParentShardId" not in shard
        assert len(shard["SequenceNumberRange"]["StartingSequenceNumber"]) == 21
    assert shard_ids(streams, arn, page=5) == [s["ShardId"] for s in shards]  # paging
    with pytest.raises(ClientError) as info:
        streams.describe_stream(StreamArn=f"{arn[:-3]}999")
    assert code(info) == "ResourceNotFoundException"
    _, no_stream = make_table(ddb, None, prefix="plain")
    assert no_stream is None


def _workload(ddb: Any, name: str, pks: list[str]) -> dict[str, list[tuple[str, Any, Any]]]:
    """Writes on every key; returns the changes expected: key -> [(event, old, new)]."""
    expected: dict[str, list[tuple[str, Any, Any]]] = defaultdict(list)
    stored: dict[str, Any] = {}

    def changed(pk: str, new: Any) -> None:
        old = stored.get(pk)
        if new != old:
            event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
            expected[key_of({"dynamodb": {"Keys": {"pk": {"S": pk}}}})].append((event, old, new))
        stored[pk] = new

    for pk in pks:
        key = {"pk": {"S": pk}}
        one = {**key, "v": {"N": "1"}}
        ddb.put_item(TableName=name, Item=one)
        changed(pk, one)
        ddb.put_item(TableName=name, Item=one)  # the same item again: no change, no record
        changed(pk, one)
        ddb.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v, w = :w",
                        ExpressionAttributeValues={":v": {"N": "2"}, ":w": {"S": "x"}})
        changed(pk, {**key, "v": {"N": "2"}, "w": {"S": "x"}})
        ddb.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v",  # unchanged
                        ExpressionAttributeValues={":v": {"N": "2"}})
        with pytest.raises(ClientError):
            ddb.put_item(TableName=name, Item={**key, "v": {"N": "9"}},
                         ConditionExpression="attribute_not_exists(pk)")
    ddb.batch_write_item(RequestItems={name: [
        {"PutRequest": {"Item": {"pk": {"S": pk}, "v": {"N": "3"}}}} for pk in pks[::2]]})
    for pk in pks[::2]:
        changed(pk, {"pk": {"S": pk}, "v": {"N": "3"}})
    for pk in pks:
        ddb.delete_item(TableName=name, Key={"pk": {"S": pk}})
        changed(pk, None)
        ddb.delete_item(TableName=name, Key={"pk": {"S": pk}})  # nothing left: no record
    return expected


@pytest.mark.parametrize("view", VIEWS)
def test_every_change_appears_once_in_order_with_the_views_images(
        ddb: Any, streams: Any, view: str) -> None:
    name, arn = make_table(ddb, view)
    assert arn is not None
    pks = [f"item-{n}" for n in range(8)]
    expected = _workload(ddb, name, pks)
    by_shard = read_stream(streams, arn)
    seen: dict[str, list[tuple[str, Any, Any]]] = defaultdict(list)
    shard_of: dict[str, set[str]] = defaultdict(set)
    for shard, records in by_shard.items():
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
        assert seqs == sorted(set(seqs)), f"{shard}: sequence numbers not strictly increasing"
        for record in records:
            stream_record = record["dynamodb"]
            assert (record["eventVersion"], record["eventSource"], record["awsRegion"]) == \
                ("1.1", "aws:dynamodb", "us-east-1")
            assert stream_record["StreamViewType"] == view and stream_record["SizeBytes"] > 0
            assert len(stream_record["SequenceNumber"]) == 21
            assert abs(stream_record["ApproximateCreationDateTime"].timestamp() - time.time()) \
                < 300
            key = key_of(record)
            shard_of[key].add(shard)
            seen[key].append((record["eventName"], stream_record.get("OldImage"),
                              stream_record.get("NewImage")))
    assert all(len(shards) == 1 for shards in shard_of.values())  # one key, one shard
    wants_new, wants_old = view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"), \
        view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
    shaped = {key: [(event, old if wants_old else None, new if wants_new else None)
                    for event, old, new in changes] for key, changes in expected.items()}
    assert dict(seen) == shaped
    assert sum(len(c) for c in shaped.values()) == 8 * 3 + 4  # INSERT, MODIFY, REMOVE + batch
    event_ids = [r["eventID"] for records in by_shard.values() for r in records]
    assert len(set(event_ids)) == len(event_ids)


def _hot_shard(streams: Any, arn: str) -> tuple[str, list[dict[str, Any]]]:
    non_empty = {s: r for s, r in read_stream(streams, arn).items() if r}
    assert len(non_empty) == 1, "one partition key: one shard"
    return next(iter(non_empty.items()))


def test_each_kind_of_shard_iterator(ddb: Any, streams: Any) -> None:
    name, arn = make_table(ddb, "KEYS_ONLY", prefix="iterators", range_key=True)
    assert arn is not None
    for sk in range(5):
        ddb.put_item(TableName=name, Item={"pk": {"S": "it"}, "sk": {"N": str(sk)}})
    shard, records = _hot_shard(streams, arn)
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]

    def sks(found: list[dict[str, Any]]) -> list[int]:
        return [int(r["dynamodb"]["Keys"]["sk"]["N"]) for r in found]
    assert sks(records) == [0, 1, 2, 3, 4]
    assert sks(read_shard(streams, arn, shard, limit=1)) == [0, 1, 2, 3, 4]  # one per call
    assert sks(read_shard(streams, arn, shard, "AT_SEQUENCE_NUMBER",
                          SequenceNumber=seqs[2])) == [2, 3, 4]
    assert sks(read_shard(streams, arn, shard, "AFTER_SEQUENCE_NUMBER",
                          SequenceNumber=seqs[2])) == [3, 4]
    latest = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                        ShardIteratorType="LATEST")["ShardIterator"]
    ddb.put_item(TableName=name, Item={"pk": {"S": "it"}, "sk": {"N": "5"}})
    after_latest, following = read_iterator(streams, latest)
    assert sks(after_latest) == [5]
    assert following is not None
    ddb.put_item(TableName=name, Item={"pk": {"S": "it"}, "sk": {"N": "6"}})
    assert sks(read_iterator(streams, following)[0]) == [6]  # the chain goes on


def test_iterators_expire_after_15_minutes_and_bad_requests_are_refused(
        ddb: Any, streams: Any) -> None:
    name, arn = make_table(ddb, "NEW_IMAGE", prefix="expiry")
    assert arn is not None
    ddb.put_item(TableName=name, Item={"pk": {"S": "e"}})
    shard, _ = _hot_shard(streams, arn)
    fresh = ShardIterator.decode(streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"])
    now_ms = int(time.time() * 1000)
    almost = ShardIterator(fresh.arn, fresh.shard, fresh.after, now_ms - ITERATOR_TTL_MS + 60_000)
    assert len(streams.get_records(ShardIterator=almost.encode())["Records"]) == 1
    stale = ShardIterator(fresh.arn, fresh.shard, fresh.after, now_ms - ITERATOR_TTL_MS - 1000)
    with pytest.raises(ClientError) as info:
        streams.get_records(ShardIterator=stale.encode())
    assert code(info) == "ExpiredIteratorException"
    with pytest.raises(ClientError) as info:
        streams.get_records(ShardIterator="not-an-iterator")
    assert code(info) == "ValidationException"
    with pytest.raises(ClientError) as info:
        streams.get_shard_iterator(StreamArn=arn, ShardId="shardId-00000000000000000000-00",
                                   ShardIteratorType="TRIM_HORIZON")
    assert code(info) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as info:
        streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                   ShardIteratorType="AT_SEQUENCE_NUMBER")
    assert code(info) == "ValidationException"
    with pytest.raises(ClientError) as info:
        streams.get_records(ShardIterator=fresh.encode(), Limit=1001)
    assert code(info) == "ValidationException"


def test_a_disabled_stream_stays_readable_and_records_nothing_new(
        ddb: Any, streams: Any) -> None:
    name, arn = make_table(ddb, "NEW_AND_OLD_IMAGES", prefix="disabled")
    ddb.put_item(TableName=name, Item={"pk": {"S": "before"}})
    ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    ddb.put_item(TableName=name, Item={"pk": {"S": "after"}})
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["LatestStreamArn"] == arn and "StreamSpecification" not in table
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert (description["StreamStatus"], description["StreamViewType"]) == \
        ("DISABLED", "NEW_AND_OLD_IMAGES")
    keys = [r["dynamodb"]["Keys"]["pk"]["S"]
            for records in read_stream(streams, arn).values() for r in records]
    assert keys == ["before"]


def test_record_times_are_the_leaders_skewed_clock(stream_cluster: Cluster, ddb: Any,
                                                   streams: Any) -> None:
    """The leader stamps its wall clock plus the chaos clock-skew offset into the command, so
    ApproximateCreationDateTime follows a skewed leader (and every replica agrees on it)."""
    name, arn = make_table(ddb, "KEYS_ONLY", prefix="skewed")
    assert arn is not None
    skew_ms = -3_600_000
    nodes = [n["id"] for n in stream_cluster.info["regions"]["us-east-1"]["nodes"]]
    files = [clock_offset_path(stream_cluster.data_dir, node) for node in nodes]
    try:
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"offset_ms": skew_ms}))
        attempt = iter(range(10_000))

        def skewed_record() -> bool:
            pk = f"skew-{next(attempt)}"
            ddb.put_item(TableName=name, Item={"pk": {"S": pk}})
            records = [r for rs in read_stream(streams, arn).values() for r in rs
                       if r["dynamodb"]["Keys"]["pk"]["S"] == pk]
            assert len(records) == 1
            moment = records[0]["dynamodb"]["ApproximateCreationDateTime"].timestamp()
            return abs(moment - (time.time() + skew_ms / 1000)) < 60
        wait_for(skewed_record, "a record stamped with the skewed clock", 15, 0.3)
    finally:
        for path in files:
            path.unlink(missing_ok=True)
