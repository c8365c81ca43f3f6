"""Request and response bodies of the publisher API."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from alerting.durations import parse_duration
from alerting.inline import InlineRecipients
from core.catalogue.event_types import EVENT_TYPES, Digest, Priority
from core.catalogue.models import EventCounts, EventStatus, StatusChange, utcnow
from core.timing.delays import MAX_AHEAD, parse_delay, parse_send_at

ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
TOPIC_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
#: A client's event_id, or the UUID Herald makes.
EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: An event id in a path: the tenant's own id, or (for an operator's key) another tenant's
#: qualified one, `<tenant>~<id>`, as GET /events lists them to an operator.
EVENT_PATH_PATTERN = r"^([a-z0-9][a-z0-9-]{0,31}~)?[A-Za-z0-9_-]{1,64}$"
# Deeper `data` serves no template and costs every JSON encoder on the way a recursion;
# past a few hundred levels the event cannot even be encoded for the queue.
MAX_DATA_DEPTH = 32


def check_data(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as every hop can carry it: at most MAX_DATA_DEPTH levels of objects and
    arrays, and numbers JSON has (NaN and Infinity are not: they would be stored as given
    but sent on as null)."""
    stack: list[tuple[Any, str, int]] = [(data, "data", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"NaN and Infinity are not JSON numbers (at {path})")
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DATA_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DATA_DEPTH} levels (at {path})")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        stack.extend((v, f"{path}.{k}", depth + 1) for k, v in items)
    return data


class EventIn(BaseModel):
    """An event as a product posts it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "comment",
                    "user_id": "u-42",
                    "data": {"actor": "Ana", "post": "p-7", "text": "Nice!"},
                },
                {
                    "type": "trend.top_artist_changed",
                    "topic": "charts.global",
                    "data": {"chart": "Global Top 50", "artist": "Nova"},
                },
                {
                    "type": "alert.pipeline_failed",
                    "topic": "data-platform",
                    "priority": "critical",
                    "data": {"pipeline": "daily-sales", "error": "timeout"},
                },
            ]
        },
    )

    type: str = Field(description="An event type from the catalogue (see the README).")
    user_id: str | None = Field(default=None, pattern=ID_PATTERN, description="The one recipient.")
    topic: str | None = Field(
        default=None, pattern=TOPIC_PATTERN, description="Every subscriber of this topic."
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Template variables; at most {MAX_DATA_DEPTH} levels deep, finite numbers.",
    )
    priority: Priority | None = Field(default=None, description="Overrides the type's default.")
    event_id: str | None = Field(
        default=None,
        pattern=EVENT_ID_PATTERN,
        description="Client-chosen id; a repeat with the same id is a duplicate, not a new event.",
    )
    to: InlineRecipients | None = Field(
        default=None,
        description="Inline recipients (on-call lists) instead of user_id or topic: "
        '{"email": [...], "sms": [...], "whatsapp": [...], "chat": [webhook URLs]}.',
    )
    dedupe_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Events of one type with one key are one alert: the first trigger "
        "notifies, repeats are counted, a resolve closes it (docs/alerting.md).",
    )
    action: Literal["trigger", "resolve"] | None = Field(
        default=None, description="With dedupe_key; default trigger."
    )
    repeat_interval: str | None = Field(
        default=None,
        description="With dedupe_key: remind of an open alert at most this often, e.g. 4h "
        "(default: the type's).",
    )
    notify_resolved: bool | None = Field(
        default=None,
        description="With dedupe_key: whether resolving notifies (default: the type's).",
    )
    digest: Digest | None = Field(
        default=None,
        description="Gather this type's events for the user (and one value of `key`, a data "
        'field) into one notification, e.g. {"window": "10m", "key": "post", "max_items": '
        '100, "leading": false}; window 1m to 7d. Overrides the type\'s own digest.',
    )
    send_at: str | None = Field(
        default=None,
        max_length=64,
        description="Send at this time, RFC 3339 with its offset (e.g. "
        "2026-12-24T09:00:00+01:00), at most 365 days ahead: accepted as SCHEDULED, "
        "cancellable with POST /events/{id}/cancel until then.",
    )
    delay: str | None = Field(
        default=None,
        max_length=64,
        description='Send after this long, e.g. "90s", "2h", "3d" (at most 365 days): as send_at.',
    )
    send_at_local: str | None = Field(
        default=None,
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="HH:MM: each recipient gets it at the next such time on their own clock "
        "(their profile's time zone); the event is routed at once, its notifications wait.",
    )

    @field_validator("repeat_interval")
    @classmethod
    def duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("data")
    @classmethod
    def encodable_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_data(value)

    @field_validator("send_at")
    @classmethod
    def rfc3339_with_offset(cls, value: str | None) -> str | None:
        if value is not None and parse_send_at(value) - utcnow() > MAX_AHEAD:
            raise ValueError(f"more than {MAX_AHEAD.days} days ahead")
        return value

    @field_validator("delay")
    @classmethod
    def bounded_delay(cls, value: str | None) -> str | None:
        if value is not None:
            parse_delay(value)
        return value

    @model_validator(mode="after")
    def one_time(self) -> EventIn:
        """At most one way of saying when: a delayed event waits whole, `send_at_local`
        makes each recipient's notifications wait."""
        given = [n for n in ("send_at", "delay", "send_at_local") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValidationError.from_exception_data(
                "EventIn",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "timing", "give one of send_at, delay and send_at_local, not both"
                        ),
                        loc=(given[1],),
                        input=getattr(self, given[1]),
                    )
                ],
            )
        return self

    @field_validator("type")
    @classmethod
    def known_type(cls, value: str) -> str:
        if value not in EVENT_TYPES:
            raise ValueError(f"unknown event type {value!r}; known types: {', '.join(EVENT_TYPES)}")
        return value

    @model_validator(mode="after")
    def digest_applies(self) -> EventIn:
        """A digest gathers one user's events by a field their data has; a critical event
        is never held back."""
        if self.digest is None:
            return self
        problem: tuple[tuple[str, ...], str] | None = None
        if self.user_id is None:
            problem = ("digest",), "only an event for one user_id is digested"
        elif (self.priority or EVENT_TYPES[self.type].priority) is Priority.critical:
            problem = ("digest",), "a critical event is never digested"
        elif self.digest.key is not None and self.digest.key not in self.data:
            problem = ("digest", "key"), f"data has no field {self.digest.key!r}"
        if problem is not None:
            loc, message = problem
            raise ValidationError.from_exception_data(
                "EventIn",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("digest", message),
                        loc=loc,
                        input=self.digest.model_dump(),
                    )
                ],
            )
        return self

    @model_validator(mode="after")
    def one_recipient_and_variables(self) -> EventIn:
        if [self.user_id, self.topic, self.to].count(None) != 2:
            raise ValueError("give exactly one of user_id or topic or to (inline recipients)")
        if self.to is not None and self.to.is_empty():
            raise ValueError("to: give at least one address")
        alert_only = (self.action, self.repeat_interval, self.notify_resolved)
        if self.dedupe_key is None and any(v is not None for v in alert_only):
            raise ValueError("action, repeat_interval and notify_resolved need a dedupe_key")
        missing = [v for v in EVENT_TYPES[self.type].variables if v not in self.data]
        if missing:
            raise ValueError(
                f"data is missing {', '.join(missing)} required by {self.type!r} templates"
            )
        wrong = EVENT_TYPES[self.type].type_errors(self.data)
        if wrong:
            # Raised as a ValidationError of its own so that each error's location is the
            # variable (`data.actor`), not the whole body.
            raise ValidationError.from_exception_data(
                "EventIn",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "variable_type",
                            "{problem} (a template variable of {type})",
                            {"problem": problem, "type": repr(self.type)},
                        ),
                        loc=("data", name),
                        input=self.data[name],
                    )
                    for name, problem in wrong.items()
                ],
            )
        return self


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(
        min_length=1,
        description="Events as for POST /events; each is validated on its own.",
        json_schema_extra={"items": {"$ref": "#/components/schemas/EventIn"}},
    )


class EventAccepted(BaseModel):
    event_id: str
    status: EventStatus
    duplicate: bool = Field(default=False, description="True when this repeats an earlier event.")


class BatchItemResult(BaseModel):
    index: int
    result: Literal["accepted", "duplicate", "error"]
    event_id: str | None = None
    status: EventStatus | None = None
    error: str | None = None


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    errors: int
    items: list[BatchItemResult]


class NotificationOut(BaseModel):
    notification_id: str
    channel: str
    recipient: str | None = Field(default=None, description="Masked address.")
    status: str
    attempts: int = 0
    last_error: str | None = None
    provider_message_id: str | None = None
    deliver_at: str | None = Field(
        default=None, description="SCHEDULED: when it is due (quiet hours, send_at_local)."
    )
    history: list[StatusChange] = Field(default_factory=list)
    history_dropped: int = Field(
        default=0,
        description="Receipts that came after the history held its most entries: counted "
        "here instead of listed (the newest is last_receipt).",
    )
    last_receipt: StatusChange | None = Field(
        default=None, description="The newest receipt, when the history was full."
    )


class EventOut(BaseModel):
    event_id: str
    type: str
    category: str
    priority: Priority
    status: EventStatus
    user_id: str | None = None
    topic: str | None = None
    data: dict[str, Any]
    created_at: str
    updated_at: str
    counts: EventCounts
    reason: str | None = None
    dedupe_key: str | None = None
    action: str | None = None
    send_at: str | None = Field(default=None, description="A delayed event's due time.")
    send_at_local: str | None = None
    tenant: str | None = Field(
        default=None, description="The tenant (API key owner) whose event this is."
    )
    digest_event_id: str | None = Field(
        default=None,
        description="DIGESTED: the digest's own event, whose notifications carry this one.",
    )
    notifications: list[NotificationOut] = Field(
        default_factory=list, description="The first page of the event's notifications."
    )
    notifications_cursor: str | None = Field(
        default=None,
        description="More notifications follow: GET /events/{event_id}/notifications?cursor=",
    )


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class Problem(BaseModel):
    """Every error body: a one-line message naming the field, plus details."""

    message: str
    detail: Any = None
