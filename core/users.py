"""User profiles and topic subscriptions in the single table.

| item         | PK              | SK           | notes                                      |
|--------------|-----------------|--------------|--------------------------------------------|
| user         | USER#<user_id>  | PROFILE      | contacts, time zone, locale, preferences   |
| subscription | TOPIC#<topic>   | USER#<id>    | `subscriber_id` feeds the by_subscriber GSI |

A topic's subscribers are one Query on the topic's partition (the router pages through it);
a user's topics are one Query on the `by_subscriber` GSI. Nothing here scans.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from core import dynamo
from core.models import iso, utcnow
from core.profiles import Preferences, ProfileFields, Subscription, UserProfile

PROFILE_SK = "PROFILE"
BATCH_GET_MAX = 100  # keys per BatchGetItem
BATCH_WRITE_MAX = 25  # requests per BatchWriteItem
UNPROCESSED_ATTEMPTS = 8


class StoreBusy(Exception):
    """DynamoDB kept handing back unprocessed keys (throttling): try again later."""


@dataclass(frozen=True)
class SubscriberPage:
    items: list[Subscription]
    next_cursor: str | None


def _user_key(user_id: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": dynamo.user_pk(user_id)}, dynamo.SK: {"S": PROFILE_SK}}


def _subscription_key(topic: str, user_id: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": dynamo.topic_pk(topic)}, dynamo.SK: {"S": dynamo.user_pk(user_id)}}


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
        requests = [
            {"DeleteRequest": {"Key": _subscription_key(topic, user_id)}}
            for topic in self.topics_of(user_id)
        ]
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending: dict[str, Any] = {self._table: requests[start : start + BATCH_WRITE_MAX]}
            attempt = 0
            while pending:
                result = self._db.batch_write_item(RequestItems=pending)
                pending = result.get("UnprocessedItems") or {}
                if pending:
                    attempt = self._backoff(attempt)
        return "Attributes" in resp

    def _backoff(self, attempt: int) -> int:
        attempt += 1
        if attempt > UNPROCESSED_ATTEMPTS:
            raise StoreBusy("DynamoDB left requests unprocessed; try again later")
        self._sleep(min(0.05 * 2**attempt, 1.0))
        return attempt

    # --- subscriptions -------------------------------------------------------------------

    def subscribe(
        self, topic: str, user_id: str, channels: Sequence[str] | None = None
    ) -> Subscription | None:
        """Subscribe (or change the channels of) a user; None when the user does not exist.

        The user check and the write are one transaction, so a subscription never outlives
        a profile deleted at the same moment.
        """
        names = {
            "#t": "topic",
            "#u": "user_id",
            "#s": "subscriber_id",
            "#cr": "created_at",
            "#up": "updated_at",
            "#ch": "channels",
        }
        values: dict[str, Any] = {
            ":t": {"S": topic},
            ":u": {"S": user_id},
            ":now": {"S": iso(utcnow())},
        }
        sets = ["#t = :t", "#u = :u", "#s = :u", "#up = :now", "#cr = if_not_exists(#cr, :now)"]
        if channels is not None:
            sets.append("#ch = :ch")
            values[":ch"] = dynamo.to_value(list(channels))
        update = "SET " + ", ".join(sets)
        if channels is None:
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
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return None
            raise
        item = self._db.get_item(
            TableName=self._table, Key=_subscription_key(topic, user_id), ConsistentRead=True
        )["Item"]
        return item_to_subscription(item)

    def unsubscribe(self, topic: str, user_id: str) -> bool:
        """True if the subscription existed."""
        resp = self._db.delete_item(
            TableName=self._table, Key=_subscription_key(topic, user_id), ReturnValues="ALL_OLD"
        )
        return "Attributes" in resp

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
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": dynamo.topic_pk(topic)}},
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
