"""A digest as stored: one small item per (tenant, recipient, type, key value, window).

    PK  DIGEST#<hash of tenant, recipient, type, key name, key value>
    SK  G#<generation, six digits>

A window opens with the first event and closes `window` later (Knock's batch): the next
event after it, or after the digest filled up, opens the next generation. The newest
generation is one Query (descending, limit 1) away, so an absorber never walks history.

The item stays far under DynamoDB's 400 KB: it keeps the count, the first
`ACTORS_MAX` distinct actors and the first `ITEMS_MAX` events' data (each cut to
`ITEM_DATA_MAX_BYTES` of JSON), never a list that grows with the events.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from core.aws import dynamo
from core.catalogue.event_types import EVENT_TYPES, Category, Digest, Priority
from core.catalogue.models import Event, iso

ACTORS_MAX = 10
ITEMS_MAX = 10
ITEM_DATA_MAX_BYTES = 2048
ACTOR_MAX_CHARS = 200
VALUE_MAX_CHARS = 200
ACTOR_FIELD = "actor"
OPEN = "OPEN"
CLOSED = "CLOSED"
PK_PREFIX = "DIGEST#"
SK_PREFIX = "G#"
# A digest's own event id: the same digest always names the same event, so a second close
# (or a close retried after a lost answer) finds the event it made instead of a new one.
DIGEST_NAMESPACE = uuid.UUID("5c0f3b0e-8f7a-4a43-9d7e-6d1f1b2a9c41")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def event_time(event: Event) -> str:
    """When an event happened for its digest: its accept, or a delayed event's due time
    (it reaches the router then, and a window it opens starts then)."""
    return max(event.created_at, event.send_at or "")


def digest_of(event: Event, *, type_defaults: bool = True) -> Digest | None:
    """The digest this event joins, or None: a critical event, an alert's, one not for a
    single user, or a digest's own event is never digested. Without `type_defaults` only
    an event's own digest counts, not its type's."""
    if event.digest_id is not None or event.priority.value == "critical":
        return None
    if event.user_id is None or event.dedupe_key is not None:
        return None
    if event.digest is not None or not type_defaults:
        return event.digest
    spec = EVENT_TYPES.get(event.type)
    return spec.digest if spec else None


def key_value(event: Event, spec: Digest) -> str:
    """The key field's value as JSON text ("" without a key); an event lacking the field
    digests with the others that lack it."""
    if spec.key is None:
        return ""
    return json.dumps(event.data.get(spec.key), sort_keys=True, separators=(",", ":"))[:1024]


def digest_pk(event: Event, spec: Digest) -> str:
    parts = [
        event.tenant or "",
        event.user_id or "",
        event.type,
        spec.key or "",
        key_value(event, spec),
    ]
    return PK_PREFIX + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def generation_sk(generation: int) -> str:
    return f"{SK_PREFIX}{generation:06d}"


def bounded_data(event: Event) -> dict[str, Any]:
    """The event's data as a digest keeps it: whole when small, else only the type's
    template variables (and scalar fields), long strings cut."""
    text = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) <= ITEM_DATA_MAX_BYTES:
        return dict(event.data)
    kept: dict[str, Any] = {}
    size = 0
    for name, value in event.data.items():
        if isinstance(value, str):
            value = value[:VALUE_MAX_CHARS]
        elif not isinstance(value, int | float | bool):
            continue
        size += len(json.dumps({name: value}, ensure_ascii=False).encode())
        if size > ITEM_DATA_MAX_BYTES:
            break
        kept[name] = value
    return kept


def actor_of(event: Event) -> str | None:
    actor = event.data.get(ACTOR_FIELD)
    return actor[:ACTOR_MAX_CHARS] if isinstance(actor, str) and actor else None


@dataclass(frozen=True)
class DigestHead:
    """One generation of a digest, as read or about to be written."""

    pk: str
    generation: int
    status: str
    version: int
    tenant: str | None
    user_id: str
    event_type: str
    category: str
    priority: str
    opened_at: str
    closes_at: str
    max_items: int
    count: int = 0
    actors: tuple[str, ...] = ()
    items: tuple[dict[str, Any], ...] = ()
    first_at: str | None = None
    last_at: str | None = None
    leading_event_id: str | None = None
    closed_at: str | None = None
    close_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sk(self) -> str:
        return generation_sk(self.generation)

    @property
    def ref(self) -> str:
        """What a scheduled close names: `<pk>/<generation>`."""
        return f"{self.pk}/{self.generation}"

    @property
    def digest_event_id(self) -> str:
        """An id Herald makes, like a POSTed event's without a key: bare (its tenant is on
        the event), and unique across tenants since the ref hashes the tenant in."""
        return str(uuid.uuid5(DIGEST_NAMESPACE, self.ref))

    @property
    def full(self) -> bool:
        return self.count >= self.max_items

    def accepts(self, event: Event) -> bool:
        """Whether the event may join this generation: open, in its window, not full."""
        return self.status == OPEN and event_time(event) < self.closes_at and not self.full

    def with_event(self, event: Event) -> DigestHead:
        """This generation with `event` absorbed (count, actors, items, times)."""
        actor = actor_of(event)
        actors = self.actors
        if actor is not None and actor not in actors and len(actors) < ACTORS_MAX:
            actors = (*actors, actor)
        items = self.items
        if len(items) < ITEMS_MAX:
            items = (*items, bounded_data(event))
        at = event_time(event)
        first = at if self.first_at is None else min(self.first_at, at)
        last = at if self.last_at is None else max(self.last_at, at)
        return replace(
            self,
            count=self.count + 1,
            actors=actors,
            items=items,
            first_at=first,
            last_at=last,
            version=self.version + 1,
        )

    def template_data(self) -> dict[str, Any]:
        """The digest's event data: the first event's data, then what digest templates
        read (`count`, `actors`, `others`, `items`, `first_at`, `last_at`), which win.
        `others`: how many besides the first actor, distinct while every actor is known
        (fewer than ACTORS_MAX), else counted by event."""
        known = len(self.actors) < ACTORS_MAX
        others = (len(self.actors) if known else self.count) - 1
        return {
            **(self.items[0] if self.items else {}),
            "count": self.count,
            "others": max(0, others),
            "actors": list(self.actors),
            "items": [dict(i) for i in self.items],
            "first_at": self.first_at,
            "last_at": self.last_at,
        }

    def to_item(self, retention_days: int) -> dict[str, Any]:
        closes = parse_time(self.closes_at)
        expires = closes + timedelta(days=retention_days)
        return dynamo.to_item(
            {
                dynamo.PK: self.pk,
                dynamo.SK: self.sk,
                "status": self.status,
                "version": self.version,
                "tenant": self.tenant,
                "user_id": self.user_id,
                "event_type": self.event_type,
                "category": self.category,
                "priority": self.priority,
                "opened_at": self.opened_at,
                "closes_at": self.closes_at,
                "max_items": self.max_items,
                "count": self.count,
                "actors": list(self.actors),
                "items_json": items_json(self.items),
                "first_at": self.first_at,
                "last_at": self.last_at,
                "leading_event_id": self.leading_event_id,
                dynamo.TTL_ATTRIBUTE: int(expires.timestamp()),
            }
        )


def items_json(items: tuple[dict[str, Any], ...]) -> str:
    return json.dumps(list(items), separators=(",", ":"), ensure_ascii=False)


def head_from_item(item: dict[str, Any]) -> DigestHead:
    values = dynamo.from_item(item)
    return DigestHead(
        pk=values[dynamo.PK],
        generation=int(values[dynamo.SK].removeprefix(SK_PREFIX)),
        status=values["status"],
        version=int(values.get("version", 0)),
        tenant=values.get("tenant"),
        user_id=values["user_id"],
        event_type=values["event_type"],
        category=values["category"],
        priority=values["priority"],
        opened_at=values["opened_at"],
        closes_at=values["closes_at"],
        max_items=int(values["max_items"]),
        count=int(values.get("count", 0)),
        actors=tuple(values.get("actors") or ()),
        items=tuple(json.loads(values.get("items_json") or "[]")),
        first_at=values.get("first_at"),
        last_at=values.get("last_at"),
        leading_event_id=values.get("leading_event_id"),
        closed_at=values.get("closed_at"),
        close_reason=values.get("close_reason"),
    )


def new_head(event: Event, spec: Digest, pk: str, generation: int) -> DigestHead:
    """A generation opened by `event`: its window runs from the event's time, so every
    router that sees this event computes the same close."""
    opened = parse_time(event_time(event))
    assert event.user_id is not None
    head = DigestHead(
        pk=pk,
        generation=generation,
        status=OPEN,
        version=0,
        tenant=event.tenant,
        user_id=event.user_id,
        event_type=event.type,
        category=event.category.value,
        priority=event.priority.value,
        opened_at=event_time(event),
        closes_at=iso(opened + timedelta(seconds=spec.seconds)),
        max_items=spec.max_items,
    )
    if spec.leading:
        return replace(head, leading_event_id=event.event_id)
    return head.with_event(event)


def digest_event(head: DigestHead, now: datetime) -> Event:
    """The event a closed digest sends: routed like any other, rendered at send time."""
    return Event(
        event_id=head.digest_event_id,
        type=head.event_type,
        category=Category(head.category),
        priority=Priority(head.priority),
        user_id=head.user_id,
        data=head.template_data(),
        created_at=iso(now),
        tenant=head.tenant,
        digest_id=head.ref,
    )
