"""User profiles and topic subscriptions in the single table.

| item         | PK              | SK           | notes                                      |
|--------------|-----------------|--------------|--------------------------------------------|
| user         | USER#<user_id>  | PROFILE      | contacts, time zone, locale, preferences   |
| subscription | TOPIC#<topic>   | USER#<id>    | `subscriber_id` feeds the by_subscriber GSI |
| topic count  | TOPIC#<topic>   | COUNT[#<nn>] | `subscribers`, on shards (`topic_counts`)   |

A topic's subscribers are one Query on the topic's partition (the router pages through it);
a user's topics are one Query on the `by_subscriber` GSI. Profiles and count items also
carry the `by_directory` attributes (`core.directory.listing`) that list a tenant's users and
topics. Nothing here scans.

A topic has at most a given number of subscribers (its fan-out size, docs/limits.md). The
count changes in the same transaction as the subscription it counts, so it is exact, and
a subscription that only changes its channels does not count again; a popular topic
counts on several items so that its subscribers do not conflict (core.directory.topic_counts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.catalogue.models import iso, utcnow
from core.directory import listing as directory
from core.directory import topic_counts
from core.directory.profiles import Preferences, ProfileFields, Subscription, UserProfile

PROFILE_SK = "PROFILE"
BATCH_GET_MAX = 100  # keys per BatchGetItem
UNPROCESSED_ATTEMPTS = 8


class StoreBusy(Exception):
    """DynamoDB kept handing back unprocessed keys (throttling): try again later."""


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


def _user_key(user_id: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": dynamo.user_pk(user_id)}, dynamo.SK: {"S": PROFILE_SK}}


def _subscription_key(topic: str, user_id: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": dynamo.topic_pk(topic)}, dynamo.SK: {"S": dynamo.user_pk(user_id)}}


def _cancellation_codes(exc: ClientError) -> list[str]:
    """The per-item reason codes of a cancelled transaction ("None" for items that were fine)."""
    return [str(r.get("Code")) for r in exc.response.get("CancellationReasons", [])]


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def item_to_profile(item: dict[str, Any]) -> UserProfile:
    return UserProfile.model_validate(dynamo.from_item(item))


def item_to_subscription(item: dict[str, Any]) -> Subscription:
    return Subscription.model_validate(dynamo.from_item(item))


class UserStore:
    def __init__(
        self, dynamodb: Any, table: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._sleep = sleep
        self.counts = topic_counts.TopicCounts(dynamodb, table)

    # --- profiles ------------------------------------------------------------------------

    def put_profile(self, user_id: str, fields: ProfileFields) -> tuple[UserProfile, bool]:
        """Create or replace the contacts, time zone and locale; returns (profile, created).

        Preferences are their own resource and survive a replace. Disabled push endpoints
        stay disabled while the profile still lists them and are forgotten once it does not.
        """
        now = iso(utcnow())
        names = {"#uid": "user_id", "#up": "updated_at", "#cr": "created_at", "#pr": "preferences"}
        values: dict[str, Any] = {
            ":uid": {"S": user_id},
            ":now": {"S": now},
            ":prefs": dynamo.to_value(Preferences().model_dump(mode="json")),
        }
        sets = [
            "#uid = :uid",
            "#up = :now",
            "#cr = if_not_exists(#cr, :now)",
            "#pr = if_not_exists(#pr, :prefs)",
        ]
        for i, (attr, value) in enumerate(directory.entry("USER", user_id).items()):
            names[f"#dir{i}"] = attr
            values[f":dir{i}"] = {"S": value}
            sets.append(f"#dir{i} = :dir{i}")
        removes = []
        for i, (attr, value) in enumerate(fields.model_dump(mode="json").items()):
            names[f"#f{i}"] = attr
            if value is None or value == []:
                removes.append(f"#f{i}")
            else:
                sets.append(f"#f{i} = :f{i}")
                values[f":f{i}"] = dynamo.to_value(value)
        update = "SET " + ", ".join(sets)
        if removes:
            update += " REMOVE " + ", ".join(removes)
        resp = self._db.update_item(
            TableName=self._table,
            Key=_user_key(user_id),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        profile = item_to_profile(resp["Attributes"])
        stale = set(profile.disabled_push_endpoints) - set(profile.push_endpoints)
        if stale:
            self._db.update_item(
                TableName=self._table,
                Key=_user_key(user_id),
                UpdateExpression="DELETE #d :stale",
                ExpressionAttributeNames={"#d": "disabled_push_endpoints"},
                ExpressionAttributeValues={":stale": {"SS": sorted(stale)}},
            )
            profile.disabled_push_endpoints = [
                arn for arn in profile.disabled_push_endpoints if arn not in stale
            ]
        return profile, profile.created_at == now

    def get(self, user_id: str) -> UserProfile | None:
        resp = self._db.get_item(TableName=self._table, Key=_user_key(user_id), ConsistentRead=True)
        item = resp.get("Item")
        return None if item is None else item_to_profile(item)

    def get_many(self, user_ids: Iterable[str]) -> dict[str, UserProfile]:
        """Profiles by id, BatchGetItem 100 keys a call; unknown ids are simply absent."""
        unique = list(dict.fromkeys(user_ids))
        found: dict[str, UserProfile] = {}
        for start in range(0, len(unique), BATCH_GET_MAX):
            keys = [_user_key(u) for u in unique[start : start + BATCH_GET_MAX]]
            request: dict[str, Any] = {self._table: {"Keys": keys}}
            attempt = 0
            while request:
                resp = self._db.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self._table, []):
                    profile = item_to_profile(item)
                    found[profile.user_id] = profile
                request = resp.get("UnprocessedKeys") or {}
                if request:
                    attempt = self._backoff(attempt)
        return found

    def set_preferences(self, user_id: str, preferences: Preferences) -> UserProfile | None:
        """Replace the user's preferences; None when there is no such user."""
        try:
            resp = self._db.update_item(
                TableName=self._table,
                Key=_user_key(user_id),
                UpdateExpression="SET #pr = :prefs, #up = :now",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#pr": "preferences", "#up": "updated_at"},
                ExpressionAttributeValues={
                    ":prefs": dynamo.to_value(preferences.model_dump(mode="json")),
                    ":now": {"S": iso(utcnow())},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return None
            raise
        return item_to_profile(resp["Attributes"])

    def disable_push_endpoint(self, user_id: str, arn: str) -> bool:
        """Never push to `arn` again (SNS said it is gone); False when the user is unknown.

        A set ADD, so concurrent workers disabling endpoints of one user do not race.
        """
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_user_key(user_id),
                UpdateExpression="ADD #d :arn SET #up = :now",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#d": "disabled_push_endpoints", "#up": "updated_at"},
                ExpressionAttributeValues={":arn": {"SS": [arn]}, ":now": {"S": iso(utcnow())}},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def delete(self, user_id: str) -> bool:
        """Delete the profile, then every subscription; True if the profile existed.

        The profile goes first so notifications stop at once; a subscription left behind by
        a crash is ignored by the router (no profile) and removed by a repeated DELETE.
        """
        resp = self._db.delete_item(
            TableName=self._table, Key=_user_key(user_id), ReturnValues="ALL_OLD"
        )
        # One transaction per topic, so each topic's count stays exact; users subscribe to
        # a handful of topics, not thousands.
        for topic in self.topics_of(user_id):
            self.unsubscribe(topic, user_id)
        return "Attributes" in resp

    def _backoff(self, attempt: int) -> int:
        attempt += 1
        if attempt > UNPROCESSED_ATTEMPTS:
            raise StoreBusy("DynamoDB left requests unprocessed; try again later")
        self._sleep(min(0.05 * 2**attempt, 1.0))
        return attempt

    # --- subscriptions -------------------------------------------------------------------

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
                self._add_subscription(topic, user_id, channels, max_subscribers)
                break
            except ClientError as exc:
                codes = _cancellation_codes(exc)
                if len(codes) != 3:
                    raise
                user_missing, subscribed, full = (c == "ConditionalCheckFailed" for c in codes)
                if user_missing:
                    return None
                if full and not subscribed:
                    limit = max_subscribers or 0
                    raise TopicFull(topic, limit, topic_counts.shards_for(limit) == 1) from exc
                if not subscribed:
                    raise
            # Already subscribed: only the channels change, and nothing is counted.
            updated = self._update_subscription(topic, user_id, channels)
            if updated is False:
                return None
            if updated:
                break
        item = self._db.get_item(
            TableName=self._table, Key=_subscription_key(topic, user_id), ConsistentRead=True
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
        item = {**_subscription_key(topic, user_id), **dynamo.to_item(values)}
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
                {
                    "ConditionCheck": {
                        "TableName": self._table,
                        "Key": _user_key(user_id),
                        "ConditionExpression": "attribute_exists(PK)",
                    }
                },
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
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": _user_key(user_id),
                            "ConditionExpression": "attribute_exists(PK)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _subscription_key(topic, user_id),
                            "UpdateExpression": update,
                            "ConditionExpression": "attribute_exists(PK)",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            codes = _cancellation_codes(exc)
            if codes[:1] == ["ConditionalCheckFailed"]:
                return False
            if codes[1:2] == ["ConditionalCheckFailed"]:
                return None
            raise
        return True

    def unsubscribe(self, topic: str, user_id: str) -> bool:
        """True if the subscription existed; the count shard it was counted on goes down
        with it (read first: the shard is the subscription's own, whatever the limit is
        now)."""
        found = self._db.get_item(
            TableName=self._table,
            Key=_subscription_key(topic, user_id),
            ProjectionExpression="count_shard",
            ConsistentRead=True,
        )
        if "Item" not in found:
            return False
        shard = int(found["Item"].get("count_shard", {}).get("N", "0"))
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": _subscription_key(topic, user_id),
                            "ConditionExpression": "attribute_exists(PK)",
                        }
                    },
                    {"Update": topic_counts.count_update(self._table, topic, shard, -1)},
                ]
            )
        except ClientError as exc:
            if _cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                return False
            raise
        return True

    def subscriber_count(self, topic: str) -> int:
        return self.counts.total(topic)

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
        items: list[dict[str, Any]] = []
        while len(items) <= limit:
            if start:
                kwargs["ExclusiveStartKey"] = start
            kwargs["Limit"] = limit + 1 - len(items)
            resp = self._db.query(**kwargs)
            items.extend(resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if not start:
                break
        page, more = items[:limit], len(items) > limit
        next_cursor = None
        if more:
            last = page[-1]
            next_cursor = dynamo.encode_cursor({k: last[k] for k in (dynamo.PK, dynamo.SK)})
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
