"""Users, their contacts and preferences, and topic subscriptions: the validated shapes.

Validation lives here, not in the API, so the router can trust what the store hands back
and the API's 422s and the store agree on what a valid profile is.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from core.catalogue.event_types import CHANNELS, Category

Channel = Literal["sms", "whatsapp", "email", "push", "chat"]
ChatFormat = Literal["slack", "teams"]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
# arn:<partition>:sns:<region>:<account>:endpoint/<platform>/<application>/<id>
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)
_PUSH_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:endpoint/[\w.-]+/[\w.-]+/[\w-]+$")


def _e164(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("must be an E.164 number: + then 7 to 15 digits, e.g. +14155550123")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}, e.g. Europe/Berlin") from exc
    return value


def _hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError("must be a 24-hour time HH:MM, e.g. 22:00")
    return value


def _locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError("must be a language tag such as en or pt-BR")
    return value


def _push_arn(value: str) -> str:
    if not _PUSH_ARN.match(value):
        raise ValueError("must be an SNS platform endpoint ARN (arn:aws:sns:...:endpoint/...)")
    return value


def _http_url(value: str) -> str:
    try:
        return str(_HTTP_URL.validate_python(value))
    except ValidationError as exc:
        raise ValueError("must be an http(s) URL, e.g. https://hooks.slack.com/...") from exc


E164 = Annotated[str, AfterValidator(_e164)]
Timezone = Annotated[str, AfterValidator(_timezone)]
ClockTime = Annotated[str, AfterValidator(_hhmm)]
Locale = Annotated[str, AfterValidator(_locale)]
PushEndpointArn = Annotated[str, AfterValidator(_push_arn)]
WebhookUrl = Annotated[str, AfterValidator(_http_url)]

assert set(get_args(Channel)) == set(CHANNELS), "Channel must name every catalogue channel"


class ChatWebhook(BaseModel):
    """A Slack or Teams incoming webhook; the URL is a credential, never logged."""

    format: ChatFormat
    url: WebhookUrl


class QuietHours(BaseModel):
    """A daily window in the user's time zone; `end` before `start` crosses midnight.

    `defer` (the default) holds what would interrupt until the window ends, so nothing is
    lost; `skip` drops it, as Herald did before deferral existed."""

    start: ClockTime
    end: ClockTime
    mode: Literal["defer", "skip"] = Field(
        default="defer",
        description="defer: send interrupting channels when the window ends (in the user's "
        "time zone); skip: do not send them at all.",
    )

    @model_validator(mode="after")
    def not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end must differ (an empty window is no quiet hours)")
        return self


class Preferences(BaseModel):
    """Which channels a user wants per category; opt-outs win over everything else."""

    categories: dict[Category, list[Channel]] = Field(
        default_factory=dict,
        description="Channels per category; a category left out uses its default channels.",
    )
    opt_out: list[Channel] = Field(
        default_factory=list, description="Channels never used, whatever the event."
    )
    quiet_hours: QuietHours | None = Field(
        default=None,
        description="Only critical events interrupt inside this window; the rest wait for "
        "its end (mode defer, the default) or are skipped (mode skip).",
    )


class Device(BaseModel):
    """A device of the user's app, as the app knows it (core/directory/devices.py)."""

    model_config = ConfigDict(extra="forbid")

    platform: Literal["fcm", "apns"] = Field(description="fcm (Android, web) or apns (iOS).")
    token: str = Field(
        min_length=1,
        max_length=4096,
        pattern=r"^[A-Za-z0-9_:.\-]+$",
        description="The FCM registration token or APNs device token.",
    )


class ProfileFields(BaseModel):
    """What a client sets with PUT /users/{id}: contacts, time zone and locale."""

    phone: E164 | None = None
    whatsapp: E164 | None = None
    email: EmailStr | None = None
    devices: list[Device] = Field(
        default_factory=list,
        max_length=20,
        description="Device tokens; Herald registers each as an SNS platform endpoint and "
        "adds the endpoint to push_endpoints.",
    )
    push_endpoints: list[PushEndpointArn] = Field(default_factory=list, max_length=20)
    chat: ChatWebhook | None = None
    timezone: Timezone = "UTC"
    locale: Locale = "en"


class UserProfile(ProfileFields):
    """A stored user: the client's fields plus what Herald keeps about them."""

    user_id: str
    preferences: Preferences = Field(default_factory=Preferences)
    disabled_push_endpoints: list[str] = Field(
        default_factory=list,
        description="Endpoints SNS reported gone; never pushed to again.",
    )
    created_at: str
    updated_at: str

    def active_push_endpoints(self) -> list[str]:
        disabled = set(self.disabled_push_endpoints)
        return [arn for arn in self.push_endpoints if arn not in disabled]


class Subscription(BaseModel):
    """A user's subscription to a topic; `channels` (if set) replace their preferences."""

    topic: str
    user_id: str
    channels: list[Channel] | None = None
    created_at: str
