"""Where a user's items sit in the single table: the profile under the user's partition, a
subscription under its topic's, keyed by the user (`core.aws.dynamo` has the whole layout).

Their own module because profiles and subscriptions both need them: a subscription is
written only while its user's profile exists, in one transaction with a check of it.
"""

from __future__ import annotations

from typing import Any

from core.aws import dynamo

PROFILE_SK = "PROFILE"


def user_key(user_id: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": dynamo.user_pk(user_id)}, dynamo.SK: {"S": PROFILE_SK}}


def subscription_key(topic: str, user_id: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": dynamo.topic_pk(topic)}, dynamo.SK: {"S": dynamo.user_pk(user_id)}}
