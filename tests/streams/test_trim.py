"""Retention: nodes started with DYNALAB_STREAM_RETENTION_S=2 trim change records after ~2 s; an
iterator positioned before the trimmed records gets TrimmedDataAccessException, TRIM_HORIZON
moves past them, and GetShardIterator refuses a trimmed sequence number."""
from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from router.streams import ShardIterator
from tests.e2e.cluster import Cluster, wait_for
from tests.streams.helpers import make_table, read_shard, shard_ids

pytestmark = pytest.mark.cluster


def test_records_past_the_retention_are_trimmed(short_retention_cluster: Cluster) -> None:
    ddb = short_retention_cluster.client()
    streams = short_retention_cluster.client(service="dynamodbstreams")
    name, arn = make_table(ddb, "NEW_IMAGE", prefix="trimmed", range_key=True)
    assert arn is not None
    # Position every shard before the write, then write: the one shard that gets the record is
    # the one whose iterator must end up refused.
    before = {shard: streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                                ShardIteratorType="LATEST")["ShardIterator"]
              for shard in shard_ids(streams, arn)}
    ddb.put_item(TableName=name, Item={"pk": {"S": "old"}, "sk": {"N": "1"}})

    def refused() -> str | None:
        for shard, iterator in before.items():
            try:
                streams.get_records(ShardIterator=iterator)
            except ClientError as error:
                if error.response["Error"]["Code"] == "TrimmedDataAccessException":
                    return shard
                raise
        return None
    shard = wait_for(refused, "the record trimmed (TrimmedDataAccessException)", 30, 0.2)
    assert all(not read_shard(streams, arn, other) for other in before if other != shard)

    # The trim horizon moved past the record: reading from it finds nothing old, and a new
    # record is there (until it too is trimmed).
    assert read_shard(streams, arn, shard) == []
    ddb.put_item(TableName=name, Item={"pk": {"S": "old"}, "sk": {"N": "2"}})
    fresh = read_shard(streams, arn, shard)
    assert [r["dynamodb"]["Keys"]["sk"]["N"] for r in fresh] in (["2"], [])

    # The position the refused iterator held is before the horizon for GetShardIterator too.
    position = ShardIterator.decode(before[shard]).after
    assert position is not None
    with pytest.raises(ClientError) as info:
        streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                   ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                   SequenceNumber=f"{position:021d}")
    assert info.value.response["Error"]["Code"] == "TrimmedDataAccessException"
    starting = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    first = {s["ShardId"]: int(s["SequenceNumberRange"]["StartingSequenceNumber"])
             for s in starting}
    assert first[shard] > position + 1  # past the trimmed record
