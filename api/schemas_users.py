"""Request and response bodies of the users and topics API.

The shapes and their validation are core's (`core.directory.profiles`), so what the API accepts is
exactly what the router can use; these subclasses add strictness and OpenAPI examples.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.directory.profiles import Channel, Preferences, ProfileFields, Subscription, UserProfile

PUSH_ARN_EXAMPLE = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald-app/6f1c2d3e"

USER_EXAMPLE: dict[str, Any] = {
    "phone": "+14155550123",
    "whatsapp": "+14155550123",
    "email": "ana@example.com",
    "push_endpoints": [PUSH_ARN_EXAMPLE],
    "chat": {"format": "slack", "url": "https://hooks.slack.com/services/T000/B000/XXXX"},
    "timezone": "Europe/Berlin",
    "locale": "en",
}

PREFERENCES_EXAMPLE: dict[str, Any] = {
    "categories": {"activity": ["push", "email"], "trend": ["email"]},
    "opt_out": ["sms"],
    "quiet_hours": {"start": "22:00", "end": "07:00"},
}


class UserIn(ProfileFields):
    """A user's contacts, time zone and locale; every contact is optional."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [USER_EXAMPLE, {"email": "bo@example.com"}]},
    )


class UserOut(UserProfile):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "u-42",
                    **USER_EXAMPLE,
                    "preferences": PREFERENCES_EXAMPLE,
                    "disabled_push_endpoints": [],
                    "created_at": "2024-05-01T09:30:00.000000Z",
                    "updated_at": "2024-05-01T09:30:00.000000Z",
                }
            ]
        }
    )


class PreferencesIn(Preferences):
    """Channels per category, opt-outs and quiet hours; replaces the stored preferences."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PREFERENCES_EXAMPLE]})


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"channels": ["email", "push"]}, {}]}
    )

    channels: list[Channel] | None = Field(
        default=None,
        min_length=1,
        description="Channels for this topic's events; omitted means the user's own "
        "preferences for the event's category. Opt-outs apply either way.",
    )


class SubscriptionOut(Subscription):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "topic": "charts.global",
                    "user_id": "u-42",
                    "channels": ["email"],
                    "created_at": "2024-05-01T09:30:00.000000Z",
                }
            ]
        }
    )


class SubscriberPage(BaseModel):
    items: list[SubscriptionOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
