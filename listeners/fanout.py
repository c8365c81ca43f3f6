"""The two message formats on the router queues, and telling good ones from poison.

    event         body: the `core.catalogue.models.Event` JSON, as SNS delivers it (raw delivery)
                  attributes: priority, type, category (set by the publisher); repair=true
                  when the reconciler republished it to repair a stranded fan-out
    continuation  body: {"kind": "continuation", "event": {...Event...},
                         "cursor": "<opaque subscriber cursor>", "page": <n >= 1>,
                         "repair": true (only in a repair's chain),
                         "channels": [the channels earlier pages queued],
                         "waiting_since": <epoch seconds this page first waited>}
                  attributes: kind=continuation, priority, type, category, event_id, page

A topic's subscribers are routed one page per message: page 0 is the event itself, and each
page that has more subscribers after it sends the next page's continuation to the queue it
came from (so the lane is kept). No message ever has to outlive its visibility window,
however many subscribers a topic has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from core.catalogue.event_types import CHANNELS, EVENT_TYPES
from core.catalogue.models import Event
from core.security.tenants import SEPARATOR

KIND_CONTINUATION = "continuation"


class Poison(Exception):
    """A message no retry can fix; `reason` goes with it to the dead-letter queue."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RouterWork:
    """One page of one event's fan-out: page 0 starts at the first subscriber."""

    event: Event
    page: int = 0
    cursor: str | None = None
    repair: bool = False
    """Sent by the reconciler for an event whose fan-out or notifications were stranded:
    every page is routed again, and every record not yet settled is enqueued again."""
    channels: frozenset[str] | None = None
    """The channels the fan-out's earlier pages queued: its pace counts only their queues
    (None: a page from before this was carried, which counts every channel)."""
    waiting_since: float | None = None
    """When this page first waited for its lane (epoch seconds); it waits at most
    `fanout_max_wait_seconds` from then."""

    def channels_after(self, used: set[str]) -> frozenset[str]:
        """The channels of this page and those before it, for the next page."""
        return frozenset(used) | (self.channels or frozenset())


class ContinuationBody(BaseModel):
    kind: Literal["continuation"]
    event: Event
    cursor: str = Field(min_length=1)
    page: int = Field(ge=1)
    repair: bool = False
    channels: list[str] | None = Field(default=None, max_length=len(CHANNELS))
    waiting_since: float | None = Field(default=None, ge=0)

    @field_validator("channels")
    @classmethod
    def known_channels(cls, value: list[str] | None) -> list[str] | None:
        unknown = [c for c in value or () if c not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel {unknown[0][:20]!r}")
        return value


def decode(body: str) -> RouterWork:
    """The work a router message asks for; raises Poison when there is none to do."""
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise Poison(f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Poison("body is not a JSON object")
    if value.get("Type") == "Notification" and isinstance(value.get("Message"), str):
        # An SNS envelope: the subscription lost RawMessageDelivery. Still an event.
        return decode(value["Message"])
    try:
        if value.get("kind") == KIND_CONTINUATION:
            continuation = ContinuationBody.model_validate(value)
            work = RouterWork(
                continuation.event,
                continuation.page,
                continuation.cursor,
                continuation.repair,
                None if continuation.channels is None else frozenset(continuation.channels),
                continuation.waiting_since,
            )
        else:
            work = RouterWork(Event.model_validate(value))
    except ValidationError as exc:
        # Field names and messages only: the input may hold personal data.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise Poison(f"not an event: {problems}") from exc
    event = work.event
    if event.type not in EVENT_TYPES:
        raise Poison(f"unknown event type {event.type!r}")
    if [event.user_id, event.topic, event.to].count(None) != 2:
        raise Poison("an event needs exactly one of user_id, topic or to")
    if work.page and event.topic is None:
        raise Poison("a continuation needs a topic event")
    return work


def continuation(
    event: Event,
    cursor: str,
    page: int,
    repair: bool = False,
    channels: frozenset[str] | None = None,
    waiting_since: float | None = None,
) -> dict[str, Any]:
    """SendMessage arguments (without QueueUrl) for fan-out page `page` of `event`."""
    body: dict[str, Any] = {
        "kind": KIND_CONTINUATION,
        "event": event.model_dump(mode="json"),
        "cursor": cursor,
        "page": page,
    }
    if repair:
        body["repair"] = True
    if channels is not None:
        body["channels"] = sorted(channels)
    if waiting_since is not None:
        body["waiting_since"] = waiting_since
    attributes = {
        "kind": KIND_CONTINUATION,
        "priority": event.priority.value,
        "type": event.type,
        "category": event.category.value,
        "event_id": event.event_id,
    }
    message_attributes: dict[str, Any] = {
        k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
    }
    message_attributes["page"] = {"DataType": "Number", "StringValue": str(page)}
    return {
        "MessageBody": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        "MessageAttributes": message_attributes,
    }


def unreached_reason(topic: str, subscribers: int) -> str:
    """Why a topic event reached nobody, naming the topic as its tenant wrote it."""
    name = topic.split(SEPARATOR, 1)[-1]
    if subscribers:
        return f"topic: none of the {subscribers} subscriber(s) of {name!r} has a profile"
    return f"topic: {name!r} has no subscribers; nothing was sent"
