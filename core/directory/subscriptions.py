"""Topic subscriptions and the counts that bound them.

| item         | PK              | SK           | notes                                       |
|--------------|-----------------|--------------|---------------------------------------------|
| subscription | TOPIC#<topic>   | USER#<id>    | `subscriber_id` feeds the by_subscriber GSI |
| topic count  | TOPIC#<topic>   | COUNT[#<nn>] | `subscribers`, on shards (`topic_counts`)   |

A topic's subscribers are one Query on the topic's partition (the router pages through it);
a user's topics are one Query on the `by_subscriber` GSI. Nothing here scans.

A topic has at most a given number of subscribers (its fan-out size, docs/limits.md). The
count changes in the same transaction as the subscription it counts, so it is exact, and
a subscription that only changes its channels does not count again; a popular topic
counts on several items so that its subscribers do not conflict (core.directory.topic_counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso, utcnow
from core.directory import topic_counts
from core.directory.keys import subscription_key, user_key
from core.directory.profiles import Subscription


class StoreBusy(Exception):
    """A subscription kept changing while it was written: try again later."""


class TopicFull(Exception):
    """The topic has as many subscribers as it may have; `limit` says how many. Not
    `exact`: the subscriber's count shard is full, the topic within a few percent of it."""

    def __init__(self, topic: str, limit: int, exact: bool = True) -> None:
        super().__init__(f"topic {topic!r} is full at most {limit} subscribers")
        self.topic = topic
        self.limit = limit
        self.exact = exact


@dataclass(frozen=True)
class SubscriberPage:
    items: list[Subscription]
    next_cursor: str | None


def item_to_subscription(item: dict[str, Any]) -> Subscription:
    return Subscription.model_validate(dynamo.from_item(item))


# Tries of a subscription's transaction that others on the same count shard cancel (a
# burst of subscribes to one topic): full-jitter backoff, about 6 s at most in all.
CONFLICT_ATTEMPTS = 8


class SubscriptionStore:
    """A user's topic subscriptions; `UserStore` adds their profile."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table
        self.counts = topic_counts.TopicCounts(dynamodb, table)

    def subscribe(
        self,
        topic: str,
        user_id: str,
        channels: Sequence[str] | None = None,
        *,
        max_subscribers: int | None = None,
    ) -> Subscription | None:
        """Subscribe (or change the channels of) a user; None when the user does not exist.
        Raises TopicFull when a new subscription would take the topic past `max_subscribers`.

        The user check, the write and the count are one transaction, so a subscription
        never outlives a profile deleted at the same moment and the count is exact.
        """
        for _ in range(2):  # twice: the subscription may vanish between the two writes
            try:
                # A transaction cancelled by another on the same count shard (or throttled)
                # wrote nothing: tried again. A refusal is not retried and is read below.
                aws_errors.retry(
                    lambda: self._add_subscription(topic, user_id, channels, max_subscribers),
                    attempts=CONFLICT_ATTEMPTS,
                )
                break
            except ClientError as exc:
                # Refused items of [user exists, not yet subscribed, room left].
                refused = aws_errors.refused_items(exc)
                if not refused:
                    raise
                if 0 in refused:
                    return None
                if 1 not in refused:  # new, and no room left for it
                    limit = max_subscribers or 0
                    raise TopicFull(topic, limit, topic_counts.shards_for(limit) == 1) from exc
            # Already subscribed: only the channels change, and nothing is counted.
            updated = self._update_subscription(topic, user_id, channels)
            if updated is False:
                return None
            if updated:
                break
        item = self._db.get_item(
            TableName=self._table, Key=subscription_key(topic, user_id), ConsistentRead=True
        ).get("Item")
        if item is None:  # unsubscribed again between every write above
            raise StoreBusy("the subscription changed while it was written; try again")
        return item_to_subscription(item)

    def _add_subscription(
        self,
        topic: str,
        user_id: str,
        channels: Sequence[str] | None,
        max_subscribers: int | None,
    ) -> None:
        """A new subscription and its count, or a cancelled transaction saying which of
        [user exists, not yet subscribed, room left] failed."""
        now = iso(utcnow())
        values: dict[str, Any] = {
            "topic": topic,
            "user_id": user_id,
            "subscriber_id": user_id,
            "created_at": now,
            "updated_at": now,
            "channels": None if channels is None else list(channels),
        }
        shards = topic_counts.shards_for(max_subscribers)
        shard = topic_counts.shard_of(user_id, shards)
        values["count_shard"] = shard
        item = {**subscription_key(topic, user_id), **dynamo.to_item(values)}
        count = topic_counts.count_update(
            self._table,
            topic,
            shard,
            1,
            cap=None if max_subscribers is None else max_subscribers // shards,
            listed=shards == 1,
        )
        self._db.transact_write_items(
            TransactItems=[
                self._user_exists(user_id),
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {"Update": count},
            ]
        )
        if shards > 1:
            self.counts.list_topic(topic)

    def _update_subscription(
        self, topic: str, user_id: str, channels: Sequence[str] | None
    ) -> bool | None:
        """Change an existing subscription's channels: True; False when the user is gone,
        None when the subscription is (unsubscribed meanwhile)."""
        names = {"#up": "updated_at", "#ch": "channels"}
        values: dict[str, Any] = {":now": {"S": iso(utcnow())}}
        update = "SET #up = :now"
        if channels is not None:
            update += ", #ch = :ch"
            values[":ch"] = dynamo.to_value(list(channels))
        else:
            update += " REMOVE #ch"
        try:
            self._db.transact_write_items(
                TransactItems=[
                    self._user_exists(user_id),
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": subscription_key(topic, user_id),
                            "UpdateExpression": update,
                            "ConditionExpression": "attribute_exists(PK)",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            refused = aws_errors.refused_items(exc)
            if 0 in refused:
                return False
            if 1 in refused:
                return None
            raise
        return True

    def unsubscribe(self, topic: str, user_id: str) -> bool:
        """True if the subscription existed; the count shard it was counted on goes down
        with it (read first: the shard is the subscription's own, whatever the limit is
        now)."""
        found = self._db.get_item(
            TableName=self._table,
            Key=subscription_key(topic, user_id),
            ProjectionExpression="count_shard",
            ConsistentRead=True,
        )
        if "Item" not in found:
            return False
        shard = int(found["Item"].get("count_shard", {}).get("N", "0"))
        try:
            aws_errors.retry(  # a conflicting transaction on the shard wrote nothing
                lambda: self._db.transact_write_items(
                    TransactItems=[
                        {
                            "Delete": {
                                "TableName": self._table,
                                "Key": subscription_key(topic, user_id),
                                "ConditionExpression": "attribute_exists(PK)",
                            }
                        },
                        {"Update": topic_counts.count_update(self._table, topic, shard, -1)},
                    ]
                ),
                attempts=CONFLICT_ATTEMPTS,
            )
        except ClientError as exc:
            if 0 in aws_errors.refused_items(exc):
                return False
            raise
        return True

    def _user_exists(self, user_id: str) -> dict[str, Any]:
        """The transaction item that holds a subscription's write to its user existing: a
        deleted user cannot be subscribed again by a late request."""
        return {
            "ConditionCheck": {
                "TableName": self._table,
                "Key": user_key(user_id),
                "ConditionExpression": "attribute_exists(PK)",
            }
        }

    def subscribers(self, topic: str, limit: int, cursor: str | None = None) -> SubscriberPage:
        """One page of a topic's subscribers, in user id order.

        Reads one item past the page to know whether another page exists, so the last page
        has no cursor (a router never sends a continuation for an empty page).
        """
        start = dynamo.decode_cursor(cursor, {dynamo.PK, dynamo.SK})
        if start is not None and start[dynamo.PK]["S"] != dynamo.topic_pk(topic):
            raise dynamo.BadCursor("cursor belongs to another topic")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :user)",
            "ExpressionAttributeValues": {
                ":pk": {"S": dynamo.topic_pk(topic)},
                ":user": {"S": dynamo.user_pk("")},
            },
            "ConsistentRead": True,
        }
        keys = (dynamo.PK, dynamo.SK)
        page, next_cursor = dynamo.query_page(self._db, kwargs, limit, start, keys)
        return SubscriberPage([item_to_subscription(i) for i in page], next_cursor)

    def topics_of(self, user_id: str) -> list[str]:
        """Every topic the user subscribes to (the by_subscriber GSI)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": dynamo.GSI_BY_SUBSCRIBER,
            "KeyConditionExpression": "subscriber_id = :u",
            "ExpressionAttributeValues": {":u": {"S": user_id}},
            "ProjectionExpression": "#t",
            "ExpressionAttributeNames": {"#t": "topic"},
        }
        topics: list[str] = []
        while True:
            resp = self._db.query(**kwargs)
            topics.extend(i["topic"]["S"] for i in resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return topics
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
