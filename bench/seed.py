"""Seeding the emulator for a workload without going through Herald (so it counts nothing).

Users and subscriptions are written with BatchWriteItem in the exact shape `core.directory.users`
stores them: the API's own path for subscriptions is a transaction per subscriber, which
the emulator makes slow once the table is large (see docs/benchmarks.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.catalogue.event_types import Category, Priority
from core.catalogue.models import Event, EventStatus, NotificationMessage, iso, utcnow
from core.directory.profiles import UserProfile
from core.directory.users import PROFILE_SK
from core.ledger.notification_records import NewNotification
from core.ledger.wiring import Ledger, build_ledger

SLACK_WEBHOOK = "https://hooks.slack.com/services/T0BENCH/B0BENCH/bench"


def contacts(index: int, channels: Sequence[str]) -> dict[str, Any]:
    """Contacts for the given channels (numbers clear of the sandbox's failing ones)."""
    out: dict[str, Any] = {}
    if "sms" in channels:
        out["phone"] = f"+1415{index:07d}"
    if "whatsapp" in channels:
        out["whatsapp"] = f"+1416{index:07d}"
    if "email" in channels:
        out["email"] = f"bench{index}@example.com"
    if "chat" in channels:
        out["chat"] = {"format": "slack", "url": SLACK_WEBHOOK}
    return out


def _write(clients: AwsClients, items: list[dict[str, Any]]) -> None:
    table = clients.names.table
    for start in range(0, len(items), 25):
        pending: dict[str, Any] = {
            table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        }
        while pending:
            pending = clients.dynamodb.batch_write_item(RequestItems=pending).get(
                "UnprocessedItems"
            )


def users(
    clients: AwsClients,
    prefix: str,
    count: int,
    channels_of: Any,
    categories: dict[str, list[str]] | None = None,
) -> list[str]:
    """`count` users `<prefix>-<i>`; `channels_of(i)` names the channels they have contacts
    for, `categories` their preferences (by default those same channels for every category
    the workloads use)."""
    now = iso(utcnow())
    ids, items = [], []
    for i in range(count):
        channels = list(channels_of(i))
        user_id = f"{prefix}-{i}"
        prefs = categories or {c: channels for c in ("activity", "trend", "security")}
        profile = UserProfile.model_validate(
            {
                "user_id": user_id,
                "timezone": "UTC",
                "preferences": {"categories": prefs},
                "created_at": now,
                "updated_at": now,
                **contacts(i, channels),
            }
        )
        values = {
            k: v for k, v in profile.model_dump(mode="json").items() if v is not None and v != []
        }
        item = dynamo.to_item(values)
        item[dynamo.PK] = {"S": dynamo.user_pk(user_id)}
        item[dynamo.SK] = {"S": PROFILE_SK}
        items.append(item)
        ids.append(user_id)
    _write(clients, items)
    return ids


def subscriptions(
    clients: AwsClients, topic: str, user_ids: Sequence[str], channels: list[str]
) -> None:
    now = iso(utcnow())
    items = []
    for user_id in user_ids:
        item = dynamo.to_item(
            {
                "topic": topic,
                "user_id": user_id,
                "subscriber_id": user_id,
                "channels": channels,
                "created_at": now,
                "updated_at": now,
            }
        )
        item[dynamo.PK] = {"S": dynamo.topic_pk(topic)}
        item[dynamo.SK] = {"S": dynamo.user_pk(user_id)}
        items.append(item)
    _write(clients, items)


def trend_event(clients: AwsClients) -> str:
    """A trend event recorded and taken by the router (PROCESSING), as a fan-out leaves it."""
    ledger = build_ledger(clients.dynamodb, clients.names.table)
    event = Event(
        event_id=str(uuid.uuid4()),
        type="trend.top_artist_changed",
        category=Category.trend,
        priority=Priority.normal,
        topic="bench-backlog",
        data={"chart": "Top 50", "artist": "Nova"},
        created_at=iso(utcnow()),
    )
    writes = ledger.event_writes
    (refused,) = writes.put_new_batch([writes.new_record(event)])
    if refused is not None:
        raise RuntimeError(f"recording the trend event failed: {refused!r}")
    ledger.event_status.transition(event.event_id, EventStatus.START, EventStatus.PROCESSING)
    return event.event_id


def notifications(event_id: str, channel: str, first: int, count: int) -> list[NewNotification]:
    """Queued notifications `first`..`first + count - 1` of a trend event on `channel`."""
    return [
        NewNotification(
            NotificationMessage(
                notification_id=f"{event_id}:{channel}:backlog-{i}",
                event_id=event_id,
                event_type="trend.top_artist_changed",
                category=Category.trend,
                priority=Priority.normal,
                channel=channel,
                recipient_id=f"backlog-{i}",
                addresses=[contacts(i, [channel])["email" if channel == "email" else "phone"]],
                content={"subject": "Nova tops the chart", "text": "Nova tops the chart"},
                created_at=iso(utcnow()),
            )
        )
        for i in range(first, first + count)
    ]


def put_record(ledger: Ledger, new: NewNotification) -> dict[str, Any]:
    """PutItem arguments that create `new`'s record unless it exists (as the router does)."""
    put: dict[str, Any] = ledger.records.new_record(new)["Put"]
    return put


def backlog(clients: AwsClients, channel: str, size: int) -> str:
    """`size` normal notifications of one trend event, recorded, counted and queued on
    `<channel>-normal`, as the router would have left them; returns the event id."""
    event_id = trend_event(clients)
    notes = notifications(event_id, channel, 0, size)
    ledger = build_ledger(clients.dynamodb, clients.names.table)
    # One conditional put each: the emulator's transactions copy the whole table.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: clients.dynamodb.put_item(**put_record(ledger, n)), notes))
    ledger.settlement.add_and_settle(event_id, total=size, fanout_complete=True)
    url = clients.queue_url(clients.names.channel_queue(channel, "normal"))
    for start in range(0, size, 10):
        clients.sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": n.message.model_dump_json()}
                for i, n in enumerate(notes[start : start + 10])
            ],
        )
    return event_id
