"""User profiles in the single table, and the store that also holds their subscriptions.

| item | PK             | SK      | notes                                    |
|------|----------------|---------|------------------------------------------|
| user | USER#<user_id> | PROFILE | contacts, time zone, locale, preferences |

Profiles also carry the `by_directory` attributes (`core.directory.listing`) that list a
tenant's users. A user's topic subscriptions, and how a topic's subscribers are read and
counted, are `core.directory.subscriptions`; `UserStore` is both, so that deleting a user
takes their subscriptions with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso, utcnow
from core.directory import listing as directory
from core.directory.keys import PROFILE_SK, user_key
from core.directory.profiles import Preferences, ProfileFields, UserProfile
from core.directory.subscriptions import StoreBusy, SubscriptionStore

# With the store, the names its callers catch and key by.
__all__ = ["PROFILE_SK", "StoreBusy", "UserStore", "item_to_profile"]


def item_to_profile(item: dict[str, Any]) -> UserProfile:
    return UserProfile.model_validate(dynamo.from_item(item))


class UserStore(SubscriptionStore):
    """Profiles (here) and topic subscriptions (`SubscriptionStore`) of users."""

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
            Key=user_key(user_id),
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
                Key=user_key(user_id),
                UpdateExpression="DELETE #d :stale",
                ExpressionAttributeNames={"#d": "disabled_push_endpoints"},
                ExpressionAttributeValues={":stale": {"SS": sorted(stale)}},
            )
            profile.disabled_push_endpoints = [
                arn for arn in profile.disabled_push_endpoints if arn not in stale
            ]
        return profile, profile.created_at == now

    def get(self, user_id: str) -> UserProfile | None:
        resp = self._db.get_item(TableName=self._table, Key=user_key(user_id), ConsistentRead=True)
        item = resp.get("Item")
        return None if item is None else item_to_profile(item)

    def get_many(
        self, user_ids: Iterable[str], *, consistent: bool = False
    ) -> dict[str, UserProfile]:
        """Profiles by id; unknown ids are simply absent. `consistent` when a user written
        just before must be found (the router's first routing of their event)."""
        keys = [user_key(u) for u in dict.fromkeys(user_ids)]  # BatchGetItem refuses repeats
        items = dynamo.batch_get(self._db, self._table, keys, consistent=consistent)
        profiles = (item_to_profile(item) for item in items)
        return {profile.user_id: profile for profile in profiles}

    def set_preferences(self, user_id: str, preferences: Preferences) -> UserProfile | None:
        """Replace the user's preferences; None when there is no such user."""
        try:
            resp = self._db.update_item(
                TableName=self._table,
                Key=user_key(user_id),
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
            if aws_errors.is_refusal(exc):
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
                Key=user_key(user_id),
                UpdateExpression="ADD #d :arn SET #up = :now",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#d": "disabled_push_endpoints", "#up": "updated_at"},
                ExpressionAttributeValues={":arn": {"SS": [arn]}, ":now": {"S": iso(utcnow())}},
            )
        except ClientError as exc:
            if aws_errors.is_refusal(exc):
                return False
            raise
        return True

    def delete(self, user_id: str) -> bool:
        """Delete the profile, then every subscription; True if the profile existed.

        The profile goes first so notifications stop at once; a subscription left behind by
        a crash is ignored by the router (no profile) and removed by a repeated DELETE.
        """
        resp = self._db.delete_item(
            TableName=self._table, Key=user_key(user_id), ReturnValues="ALL_OLD"
        )
        # One transaction per topic, so each topic's count stays exact; users subscribe to
        # a handful of topics, not thousands.
        for topic in self.topics_of(user_id):
            self.unsubscribe(topic, user_id)
        return "Attributes" in resp
