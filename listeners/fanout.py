"""The two message formats on the router queues, and telling good ones from poison.

    event         body: the `core.catalogue.models.Event` JSON, as SNS delivers it (raw delivery)
                  attributes: priority, type, category (set by the publisher); repair=true
                  when the reconciler republished it to repair a stranded fan-out
    continuation  body: {"kind": "continuation", "event": {...Event...},
                         "cursor": "<opaque subscriber cursor>", "page": <n >= 1>,
                         "repair": true (only in a repair's chain)}
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

from pydantic import BaseModel, Field, ValidationError

from core.catalogue.event_types import EVENT_TYPES
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


class ContinuationBody(BaseModel):
    kind: Literal["continuation"]
    event: Event
    cursor: str = Field(min_length=1)
    page: int = Field(ge=1)
    repair: bool = False


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
                continuation.event, continuation.page, continuation.cursor, continuation.repair
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


def continuation(event: Event, cursor: str, page: int, repair: bool = False) -> dict[str, Any]:
    """SendMessage arguments (without QueueUrl) for fan-out page `page` of `event`."""
    body: dict[str, Any] = {
        "kind": KIND_CONTINUATION,
        "event": event.model_dump(mode="json"),
        "cursor": cursor,
        "page": page,
    }
    if repair:
        body["repair"] = True
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
