"""How many subscribers a topic has, counted so that subscribers do not queue behind each
other.

The count changes in the same transaction as the subscription it counts, so it is exact.
One count item per topic would put every subscribe of a popular topic in a transaction
on one item, and DynamoDB cancels concurrent transactions on one item
(`TransactionConflict`): a topic that thousands join at once would serialise them. So a
topic whose limit is large counts on several items, `COUNT` and `COUNT#01` … `COUNT#15`,
and each subscriber counts on the one its user id hashes to; the total is their sum (one
Query: they sort before the topic's subscriptions).

| item        | PK            | SK                 | notes                                       |
|-------------|---------------|--------------------|---------------------------------------------|
| count shard | TOPIC#<topic> | COUNT, COUNT#<nn>  | `subscribers` counted on this shard         |

The topic's limit holds per shard: a shard refuses a subscriber once it holds
`limit // shards`, so the topic never passes its limit, and with uniform hashing becomes
full within a few percent of it (at 100,000 over 16 shards, each shard's count deviates by
about 80 from its 6,250). Topics with a small limit keep one shard, where the limit is
exact. A subscription remembers its shard (`count_shard`), so it is uncounted where it was
counted even after the limit (and so the number of shards) changed.

`COUNT` also lists the topic in its tenant's directory (`core.directory.listing`): in the
subscription's transaction for a topic on one shard; for a sharded one, once per process
that subscribes to it (`sharded`, so a directory page knows to sum its shards).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from core.aws import dynamo
from core.directory import listing as directory

COUNT_SK = "COUNT"  # sorts before every USER#<id> of the topic's partition
MAX_SHARDS = 16
# A topic gets one shard per this many subscribers its limit allows (at most MAX_SHARDS):
# below it, contention is bounded by the limit itself.
SUBSCRIBERS_PER_SHARD = 1000


def shards_for(max_subscribers: int | None) -> int:
    if max_subscribers is None:
        return MAX_SHARDS
    return max(1, min(MAX_SHARDS, max_subscribers // SUBSCRIBERS_PER_SHARD))


def shard_of(user_id: str, shards: int) -> int:
    return zlib.crc32(user_id.encode()) % shards


def count_sk(shard: int) -> str:
    return COUNT_SK if shard == 0 else f"{COUNT_SK}#{shard:02d}"


def count_key(topic: str, shard: int) -> dict[str, Any]:
    return {dynamo.PK: {"S": dynamo.topic_pk(topic)}, dynamo.SK: {"S": count_sk(shard)}}


def count_update(
    table: str, topic: str, shard: int, delta: int, *, cap: int | None = None, listed: bool = False
) -> dict[str, Any]:
    """The Update of one count shard inside a subscription's transaction: by `delta`,
    refused when it already holds `cap`; with `listed`, also the directory entry (a topic
    with one shard lists itself on its only count item, in the same transaction)."""
    update: dict[str, Any] = {
        "TableName": table,
        "Key": count_key(topic, shard),
        "UpdateExpression": "ADD #n :delta",
        "ExpressionAttributeNames": {"#n": "subscribers"},
        "ExpressionAttributeValues": {":delta": {"N": str(delta)}},
    }
    if listed:
        sets, names, values = _listing(topic, sharded=False)
        update["UpdateExpression"] += " SET " + sets
        update["ExpressionAttributeNames"].update(names)
        update["ExpressionAttributeValues"].update(values)
    if cap is not None:
        update["ConditionExpression"] = "attribute_not_exists(#n) OR #n < :cap"
        update["ExpressionAttributeValues"][":cap"] = {"N": str(cap)}
    return update


def _listing(topic: str, *, sharded: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
    entry = directory.entry("TOPIC", topic)
    return (
        "#dir = :dir, #dk = :dk, #sh = :sh",
        {"#dir": directory.PARTITION, "#dk": directory.SORT, "#sh": "sharded"},
        {
            ":dir": {"S": entry[directory.PARTITION]},
            ":dk": {"S": entry[directory.SORT]},
            ":sh": {"BOOL": sharded},
        },
    )


class TopicCounts:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table
        # Topics this process has listed in the directory already: listing a sharded
        # topic is one write per process, not one per subscriber on its busiest item.
        self._listed: set[str] = set()

    def list_topic(self, topic: str) -> None:
        """Put a sharded topic in its tenant's directory (idempotent; once per process)."""
        if topic in self._listed:
            return
        sets, names, values = _listing(topic, sharded=True)
        self._db.update_item(
            TableName=self._table,
            Key=count_key(topic, 0),
            UpdateExpression="SET " + sets,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        self._listed.add(topic)

    def total(self, topic: str) -> int:
        """The sum of the topic's shards (one consistent Query of a few small items)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :count)",
            "ExpressionAttributeValues": {
                ":pk": {"S": dynamo.topic_pk(topic)},
                ":count": {"S": COUNT_SK},
            },
            "ProjectionExpression": "subscribers",
            "ConsistentRead": True,
        }
        total = 0
        while True:
            resp = self._db.query(**kwargs)
            total += sum(int(i.get("subscribers", {}).get("N", "0")) for i in resp["Items"])
            if "LastEvaluatedKey" not in resp:
                return total
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def totals(self, listed: Sequence[dict[str, Any]]) -> list[int]:
        """Counts of a directory page's topics (`COUNT` items, plain), in order: a topic on
        one shard is its item's count; a sharded one is read (a Query each)."""
        return [
            self.total(str(item[dynamo.PK]).removeprefix("TOPIC#"))
            if item.get("sharded")
            else int(item.get("subscribers", 0))
            for item in listed
        ]
