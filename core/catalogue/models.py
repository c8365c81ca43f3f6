"""Domain records shared by the API, the router and the workers."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.catalogue.event_types import Category, Digest, Priority


class EventStatus(StrEnum):
    START = "START"
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    # Absorbed into a digest (core.digests): settled, sent as part of the digest's own
    # event, which `digest_event_id` names.
    DIGESTED = "DIGESTED"
    # Waiting for its time (core.timing): a delayed event not yet published, or a routed
    # one whose every notification still pending is SCHEDULED. Nothing of it was sent.
    SCHEDULED = "SCHEDULED"
    # Cancelled while SCHEDULED (POST /events/{id}/cancel): final, nothing was sent.
    CANCELLED = "CANCELLED"


class NotificationStatus(StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    RETRYING = "RETRYING"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    DELIVERED = "DELIVERED"
    UNDELIVERED = "UNDELIVERED"
    BOUNCED = "BOUNCED"
    # Deferred (quiet hours, send_at_local) until `deliver_at`; released to QUEUED then.
    SCHEDULED = "SCHEDULED"
    # Its event was cancelled while it waited: final, never sent.
    CANCELLED = "CANCELLED"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """Fixed-width UTC timestamps sort lexicographically, which the GSI sort keys rely on."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Event(BaseModel):
    """An accepted event: the SNS message body and the core of the DynamoDB event item."""

    event_id: str
    type: str
    category: Category
    priority: Priority
    user_id: str | None = None
    topic: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    # Alert lifecycle (alerting/): events sharing (type, dedupe_key) are one alert.
    dedupe_key: str | None = None
    action: Literal["trigger", "resolve"] | None = None
    repeat_interval_seconds: int | None = None
    notify_resolved: bool | None = None
    to: dict[str, list[str]] | None = None
    """Inline recipients by channel (on-call lists), instead of a user or a topic."""
    tenant: str | None = None  # None: made before tenants (`default`); see core.security.tenants
    digest: Digest | None = None
    """This event's own digest, over its type's (core.catalogue.event_types)."""
    digest_id: str | None = None
    """Set on a digest's own event (core.digests): it is routed, never digested again."""
    send_at: str | None = None
    """A delayed event's due time (core.timing): it is published then."""
    send_at_local: str | None = None
    """HH:MM: each recipient's notifications wait for the next such time in their zone."""

    def fingerprint(self) -> str:
        """What a repeat must match to count as the same event (the id and time excluded)."""
        base = payload_hash(self.type, self.priority, self.user_id, self.topic, self.data)
        extra = self.model_dump(
            include={
                "dedupe_key",
                "action",
                "repeat_interval_seconds",
                "notify_resolved",
                "to",
                "digest",
                # send_at is not: a repeat of a `delay` request computes another one
                "send_at_local",
            },
            exclude_none=True,
        )
        if not extra:  # events without alert fields keep the hash they always had
            return base
        canonical = json.dumps([base, extra], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def payload_hash(
    type_: str, priority: str, user_id: str | None, topic: str | None, data: dict[str, Any]
) -> str:
    canonical = json.dumps(
        {
            "type": type_,
            "priority": str(priority),
            "user_id": user_id,
            "topic": topic,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class StatusChange(BaseModel):
    status: str
    at: str
    detail: str | None = None


class EventCounts(BaseModel):
    total: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0


class EventRecord(Event):
    """The event as stored, with its lifecycle."""

    status: EventStatus
    payload_hash: str
    updated_at: str
    counts: EventCounts = Field(default_factory=EventCounts)
    publish_attempts: int = 1
    last_published_at: str | None = None
    reason: str | None = None
    fanout_complete: bool = False
    digest_event_id: str | None = None  # DIGESTED: the digest's event, which notifies


# At most this many records make an event counted from its records (core.ledger.record_counts).
SELF_COUNTED_MAX = 25


class Attachment(BaseModel):
    """A file sent with a notification (email only): made by the worker at send time, so it
    never rides on a queue message."""

    filename: str = Field(max_length=200)
    type: str = Field(max_length=100, description="MIME type, e.g. text/csv.")
    content: str = Field(description="The file's bytes, base64.")
    disposition: Literal["attachment", "inline"] = "attachment"


class NotificationMessage(BaseModel):
    """One notification on a channel queue: everything a worker needs to send it
    without reading the database. Rendered by the router."""

    notification_id: str
    event_id: str
    event_type: str
    category: Category
    priority: Priority
    channel: str
    recipient_id: str
    addresses: list[str] = Field(
        min_length=1,
        description="Phone (E.164), email, push endpoint ARNs or a chat webhook URL.",
    )
    content: dict[str, str] = Field(
        description="Rendered per channel: sms/whatsapp {text}; email {subject, text, html}; "
        "push {title, body}; chat {format: slack|teams, title, text, severity}."
    )
    created_at: str
    # How many items the event's outcomes count on (core.ledger.event_tally): 1, or more for a
    # topic's fan-out, whose outcomes would otherwise all write one item.
    tally_shards: int = Field(default=1, ge=1, le=16)
    # How many partitions the event's records are spread over (core.aws.dynamo.record_pk).
    record_shards: int = Field(default=1, ge=1, le=64)
    # The event's records (their sort keys) when they are its counts (core.ledger.record_counts):
    # the outcome then writes the record alone, no counter, and reads them back to settle.
    counted_records: list[str] = Field(default_factory=list, max_length=SELF_COUNTED_MAX)
    # Files the worker rendered just before the send (core.catalogue.reports); excluded
    # from every dump, so a queued message never carries them.
    attachments: list[Attachment] = Field(default_factory=list, exclude=True)


def notification_id(event_id: str, channel: str, recipient_id: str) -> str:
    return f"{event_id}:{channel}:{recipient_id}"


class DeliveryResult(BaseModel):
    """What a provider said when it took a message."""

    provider: str
    provider_message_id: str | None = None


def parse_notification_id(value: str) -> tuple[str, str, str] | None:
    """(event_id, channel, recipient_id), or None for a value Herald did not issue."""
    parts = value.split(":")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]
