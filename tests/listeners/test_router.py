"""The router against real queues and DynamoDB on the emulator.

Events are recorded and published to SNS as the API does, so each test reads its router
message from the real router queue; the router's results are applied with the batch core.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.catalogue.event_types import EVENT_TYPES, Category, Priority
from core.catalogue.models import Event, EventRecord, EventStatus, NotificationMessage, iso, utcnow
from core.directory.profiles import Preferences, ProfileFields
from core.directory.users import PROFILE_SK, UserStore
from core.ledger.notification_records import NewNotification
from core.ledger.publisher import publish_events
from core.ledger.record_creation import CHUNK_MAX, RecordCreation
from core.platform.settings import Settings
from listeners.batch import BatchSettler
from listeners.fanout import Poison, RouterWork, continuation, decode
from listeners.lambda_handler import sqs_lambda_handler
from listeners.messages import Ack, DeadLetter, QueueMessage, Result, Retry
from listeners.router import Router, build_consumer
from tests.conftest import Stack
from tests.factories import claim, ledger_of, record
from tests.support import wait_until

PREFIX = "herald-test"
ROUTER_NORMAL = f"{PREFIX}-events-normal"
ROUTER_CRITICAL = f"{PREFIX}-events-critical"
ARN = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/herald/{}"
COMMENT = {"actor": "Ana", "post": "p-7", "text": "Nice!"}
LOGIN = {"ip": "203.0.113.7", "device": "Firefox on Linux"}
MIDDAY_TOKYO = datetime(2024, 1, 15, 3, 0, tzinfo=UTC)
LATE_EVENING_TOKYO = datetime(2024, 1, 15, 13, 30, tzinfo=UTC)  # 22:30 in Tokyo


# --- helpers -----------------------------------------------------------------------------


#: These tests route every event on its own: the catalogue's default digests (a second
#: comment on a post within ten minutes joins a digest) are tested in test_digests.py.
PER_EVENT = {"digest_type_defaults": False}


def router(
    stack: Stack, now: datetime = MIDDAY_TOKYO, *, settings: Settings | None = None, **kwargs: Any
) -> Router:
    settings = (settings or stack.settings).model_copy(update=PER_EVENT)
    return Router(settings, stack.clients, clock=lambda: now, **kwargs)


def user_store(stack: Stack) -> UserStore:
    return UserStore(stack.clients.dynamodb, stack.clients.names.table)


def add_user(
    stack: Stack, user_id: str, preferences: dict[str, Any] | None = None, **contacts: Any
) -> None:
    users = user_store(stack)
    users.put_profile(user_id, ProfileFields(**contacts))
    if preferences is not None:
        users.set_preferences(user_id, Preferences.model_validate(preferences))


def post_event(
    stack: Stack,
    type_: str,
    data: dict[str, Any],
    *,
    user_id: str | None = None,
    topic: str | None = None,
) -> Event:
    """Record and publish an event the way the API does."""
    spec = EVENT_TYPES[type_]
    event = Event(
        event_id=str(uuid.uuid4()),
        type=type_,
        category=spec.category,
        priority=spec.priority,
        user_id=user_id,
        topic=topic,
        data=data,
        created_at=iso(utcnow()),
    )
    record(ledger_of(stack), event)
    assert publish_events(stack.clients.sns, stack.clients.topic_arn, [event]) == {}
    return event


def receive(stack: Stack, queue: str) -> list[QueueMessage]:
    return [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue)]


def settle(stack: Stack, messages: Sequence[QueueMessage], results: Sequence[Result]) -> None:
    BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(messages, results)


def route_all(stack: Stack, handler: Router, queue: str = ROUTER_NORMAL) -> list[Result]:
    messages = receive(stack, queue)
    results = handler(messages)
    settle(stack, messages, results)
    return results


def drain(stack: Stack, queue: str) -> list[dict[str, Any]]:
    """Receive and delete every message of a channel queue: body plus attributes."""
    url = stack.clients.queue_url(f"{PREFIX}-{queue}")
    raw = stack.receive_all(f"{PREFIX}-{queue}")
    for start in range(0, len(raw), 10):
        stack.clients.sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(raw[start : start + 10])
            ],
        )
    return [
        {
            **json.loads(m["Body"]),
            "attributes": {k: v["StringValue"] for k, v in m["MessageAttributes"].items()},
        }
        for m in raw
    ]


def release(stack: Stack, messages: Sequence[QueueMessage]) -> None:
    """Make messages visible again at once, as their visibility timeout would."""
    if messages:
        stack.clients.sqs.change_message_visibility_batch(
            QueueUrl=stack.clients.queue_url(messages[0].queue),
            Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ],
        )


def redeliver(stack: Stack, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
    """Receive these (unsettled) messages again, as SQS redelivers them; others received on
    the way are released untouched."""
    release(stack, messages)
    ids = {m.message_id for m in messages}
    received = receive(stack, messages[0].queue)
    release(stack, [m for m in received if m.message_id not in ids])
    again = [m for m in received if m.message_id in ids]
    assert len(again) == len(messages)
    assert all(m.receive_count > 1 for m in again)
    return again


def stored(stack: Stack, event_id: str) -> tuple[EventRecord, dict[str, dict[str, Any]]]:
    found = ledger_of(stack).event_reads.get(event_id)
    assert found is not None
    event, notifications = found
    return event, {n["channel"]: n for n in notifications}


def outcome(notification: dict[str, Any]) -> tuple[str, str | None]:
    return notification["status"], notification.get("last_error")


# --- one user ----------------------------------------------------------------------------


def test_an_event_reaches_the_users_channels_rendered_on_its_lane(stack: Stack) -> None:
    add_user(
        stack,
        "u-1",
        {"categories": {"activity": ["push", "email"]}},
        phone="+14155550123",
        email="ana@example.com",
        push_endpoints=[ARN.format("a")],
    )
    comment = post_event(stack, "comment", COMMENT, user_id="u-1")
    assert route_all(stack, router(stack)) == [Ack()]

    push = drain(stack, "push-normal")
    assert len(push) == 1
    message = NotificationMessage.model_validate(
        {k: v for k, v in push[0].items() if k != "attributes"}
    )
    assert message.notification_id == f"{comment.event_id}:push:u-1"
    assert message.addresses == [ARN.format("a")]
    assert message.content == {"title": "Ana commented", "body": '"Nice!" on p-7'}
    assert push[0]["attributes"] == {
        "priority": "normal",
        "event_id": comment.event_id,
        "notification_id": message.notification_id,
    }
    email = drain(stack, "email-normal")
    assert [m["content"]["subject"] for m in email] == ["Ana commented on your post"]
    assert email[0]["addresses"] == ["ana@example.com"]
    assert drain(stack, "sms-normal") == []

    event, notifications = stored(stack, comment.event_id)
    assert event.status is EventStatus.PROCESSING
    assert event.counts.total == 2
    assert {c: n["status"] for c, n in notifications.items()} == {
        "push": "QUEUED",
        "email": "QUEUED",
    }
    assert notifications["email"]["recipient_masked"] == "a***@example.com"
    # Queued records are listed, not written: the first claim writes the whole record.
    key = {"PK": {"S": f"EVENT#{comment.event_id}"}, "SK": {"S": "NOTIF#email#u-1"}}
    table = stack.clients.names.table
    assert "Item" not in stack.clients.dynamodb.get_item(TableName=table, Key=key)
    taken = NotificationMessage.model_validate(
        {k: v for k, v in email[0].items() if k != "attributes"}
    )
    assert claim(ledger_of(stack), taken, 60)
    _, notifications = stored(stack, comment.event_id)
    assert notifications["email"]["status"] == "SENDING"
    written = stack.clients.dynamodb.get_item(TableName=table, Key=key)["Item"]
    assert written["recipient_masked"] == {"S": "a***@example.com"}
    assert [h["status"] for h in notifications["email"]["history"]] == ["QUEUED", "SENDING"]

    # A critical event (security: sms, email, push by default) takes the critical lane.
    login = post_event(stack, "security.login_alert", LOGIN, user_id="u-1")
    assert route_all(stack, router(stack), ROUTER_CRITICAL) == [Ack()]
    texts = {}
    for channel in ("sms", "email", "push"):
        queued = drain(stack, f"{channel}-critical")
        assert [m["notification_id"] for m in queued] == [f"{login.event_id}:{channel}:u-1"]
        assert queued[0]["attributes"]["priority"] == "critical"
        assert drain(stack, f"{channel}-normal") == []
        texts[channel] = queued[0]["content"]
    assert texts["sms"]["text"].startswith("New sign-in to your account from Firefox on Linux")


def test_opt_outs_and_quiet_hours_skip_with_the_reason(stack: Stack) -> None:
    add_user(
        stack,
        "u-1",
        {
            "categories": {"activity": ["push", "email", "sms"]},
            "opt_out": ["sms"],
            "quiet_hours": {"start": "22:00", "end": "07:00", "mode": "skip"},
        },
        phone="+14155550123",
        email="ana@example.com",
        push_endpoints=[ARN.format("a")],
        timezone="Asia/Tokyo",
    )
    late = router(stack, LATE_EVENING_TOKYO)
    comment = post_event(stack, "comment", COMMENT, user_id="u-1")
    assert route_all(stack, late) == [Ack()]
    _, notifications = stored(stack, comment.event_id)
    assert {c: outcome(n) for c, n in notifications.items()} == {
        "push": ("SKIPPED", "quiet hours (22:00-07:00 Asia/Tokyo)"),
        "sms": ("SKIPPED", "opted out of sms"),
        "email": ("QUEUED", None),
    }
    assert [m["channel"] for m in drain(stack, "email-normal")] == ["email"]
    assert drain(stack, "push-normal") == [] and drain(stack, "sms-normal") == []

    # Critical (security) ignores quiet hours; the opt-out still holds.
    login = post_event(stack, "security.login_alert", LOGIN, user_id="u-1")
    assert route_all(stack, late, ROUTER_CRITICAL) == [Ack()]
    _, notifications = stored(stack, login.event_id)
    assert {c: outcome(n) for c, n in notifications.items()} == {
        "sms": ("SKIPPED", "opted out of sms"),
        "email": ("QUEUED", None),
        "push": ("QUEUED", None),
    }
    assert len(drain(stack, "push-critical")) == 1

    # The same comment at midday in Tokyo: push goes out.
    midday = post_event(stack, "comment", COMMENT, user_id="u-1")
    assert route_all(stack, router(stack, MIDDAY_TOKYO)) == [Ack()]
    _, notifications = stored(stack, midday.event_id)
    assert outcome(notifications["push"]) == ("QUEUED", None)


def test_every_event_settles_even_when_nothing_can_be_sent(stack: Stack) -> None:
    add_user(stack, "u-bare")  # no contacts at all
    skipped = post_event(stack, "comment", COMMENT, user_id="u-bare")
    unknown = post_event(stack, "comment", COMMENT, user_id="u-unknown")
    add_user(stack, "u-2", email="bo@example.com", push_endpoints=[ARN.format("b")])
    # Recorded without the API's validation: the templates need `post` and `text`.
    broken = post_event(stack, "comment", {"actor": "Ana"}, user_id="u-2")
    assert route_all(stack, router(stack)) == [Ack(), Ack(), Ack()]

    event, notifications = stored(stack, skipped.event_id)
    assert event.status is EventStatus.SUCCESS
    assert event.counts.model_dump() == {"total": 2, "sent": 0, "failed": 0, "skipped": 2}
    assert {c: outcome(n) for c, n in notifications.items()} == {
        "push": ("SKIPPED", "no push endpoint on file"),
        "email": ("SKIPPED", "no email address on file"),
    }

    event, notifications = stored(stack, unknown.event_id)
    assert event.status is EventStatus.FAILED and notifications == {}
    assert event.reason == "user_id: no user 'u-unknown'"

    event, notifications = stored(stack, broken.event_id)
    assert event.status is EventStatus.FAILED
    assert event.reason == "2 of 2 notifications failed"
    assert outcome(notifications["push"]) == (
        "FAILED",
        "template comment/push: 'text' is undefined",
    )
    assert drain(stack, "push-normal") == [] and drain(stack, "email-normal") == []


# --- a topic -----------------------------------------------------------------------------


def seed_subscribers(stack: Stack, topic: str, user_ids: Sequence[str], channel: str) -> None:
    """Profiles with an email and their subscriptions, written in bulk in the store's layout
    (the emulator takes seconds for hundreds of single writes)."""
    items: list[dict[str, Any]] = []
    for user_id in user_ids:
        items.append(
            {
                "PK": dynamo.user_pk(user_id),
                "SK": PROFILE_SK,
                "user_id": user_id,
                "email": f"{user_id}@example.com",
                "created_at": "t",
                "updated_at": "t",
            }
        )
        items.append(
            {
                "PK": dynamo.topic_pk(topic),
                "SK": dynamo.user_pk(user_id),
                "topic": topic,
                "user_id": user_id,
                "subscriber_id": user_id,
                "channels": [channel],
                "created_at": "t",
            }
        )
    table = stack.clients.names.table
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": dynamo.to_item(i)}} for i in items[start : start + 25]]
        resp = stack.clients.dynamodb.batch_write_item(RequestItems={table: requests})
        assert not resp.get("UnprocessedItems")


class CrashingCreation(RecordCreation):
    """Dies once between two chunks of a page when armed, as a router process might."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chunks_before_crash: int | None = None

    def _create_counted_chunk(
        self,
        chunk: list[NewNotification],
        listed: Mapping[str, str] | None = None,
        event_id: str = "",
        first: bool = True,
    ) -> dict[int, str] | None:
        if self.chunks_before_crash == 0:
            self.chunks_before_crash = None
            raise RuntimeError("router process killed")
        if self.chunks_before_crash is not None:
            self.chunks_before_crash -= 1
        return super()._create_counted_chunk(chunk, listed, event_id, first)


def test_a_topic_fans_out_page_by_page_once_despite_redelivery_and_a_crash(
    stack: Stack,
) -> None:
    settings = stack.settings.model_copy(update={"fanout_page_size": 100})
    subscribers = [f"u-{i:03d}" for i in range(250)]
    seed_subscribers(stack, "charts.global", subscribers, "email")
    ledger = ledger_of(stack)
    crashing = CrashingCreation(stack.clients.names.table, ledger.records, ledger.tally)
    handler = Router(
        settings,
        stack.clients,
        ledger=replace(ledger, creation=crashing),
        clock=lambda: MIDDAY_TOKYO,
    )
    trend = post_event(
        stack,
        "trend.top_artist_changed",
        {"chart": "Global Top 50", "artist": "Nova"},
        topic="charts.global",
    )
    emailed: list[str] = []
    router_messages = 0

    # Page 0, then the same message again, redelivered because it was not deleted.
    page0 = receive(stack, ROUTER_NORMAL)
    assert len(page0) == 1
    router_messages += 1
    assert handler(page0) == [Ack()]
    emailed += [m["notification_id"] for m in drain(stack, "email-normal")]
    assert len(emailed) == 100
    page0 = redeliver(stack, page0)
    assert handler(page0) == [Ack()]
    again = [m["notification_id"] for m in drain(stack, "email-normal")]
    assert sorted(again) == sorted(emailed), "still-QUEUED records are enqueued again"
    settle(stack, page0, [Ack()])
    assert stored(stack, trend.event_id)[0].counts.total == 100

    # Page 1: the continuation. The router dies after its first chunk (CHUNK_MAX records),
    # then runs the redelivered message again.
    page1 = receive(stack, ROUTER_NORMAL)
    assert len(page1) == 1, "a redelivered page sends its continuation once"
    router_messages += 1
    body = json.loads(page1[0].body)
    assert body["kind"] == "continuation" and body["page"] == 1 and body["cursor"]
    assert body["event"]["event_id"] == trend.event_id
    assert page1[0].attributes["kind"] == "continuation"
    assert page1[0].attributes["priority"] == "normal"
    crashing.chunks_before_crash = 1
    (crashed,) = handler(page1)
    assert isinstance(crashed, Retry)
    assert stored(stack, trend.event_id)[0].counts.total == 100 + CHUNK_MAX
    page1 = redeliver(stack, page1)
    assert handler(page1) == [Ack()]
    settle(stack, page1, [Ack()])
    emailed += [m["notification_id"] for m in drain(stack, "email-normal")]

    # Page 2, the last: fan-out complete.
    last = receive(stack, ROUTER_NORMAL)
    assert [json.loads(m.body)["page"] for m in last] == [2]
    router_messages += 1
    assert handler(last) == [Ack()]
    settle(stack, last, [Ack()])
    emailed += [m["notification_id"] for m in drain(stack, "email-normal")]

    assert router_messages == 3
    assert receive(stack, ROUTER_NORMAL) == []
    expected = {f"{trend.event_id}:email:{u}" for u in subscribers}
    assert len(emailed) == 250 and set(emailed) == expected
    event, _ = stored(stack, trend.event_id)
    assert event.counts.model_dump() == {"total": 250, "sent": 0, "failed": 0, "skipped": 0}
    assert event.status is EventStatus.PROCESSING
    found = ledger.event_reads.get(trend.event_id)
    assert found is not None and len(found[1]) == 250

    # Workers settle the notifications; the last count settles the event.
    assert ledger.settlement.add_and_settle(trend.event_id, sent=249) is None
    assert ledger.settlement.add_and_settle(trend.event_id, sent=1) is EventStatus.SUCCESS


# --- poison and the Lambda adapter --------------------------------------------------------


def send_raw(stack: Stack, body: str, queue: str = ROUTER_NORMAL) -> None:
    stack.clients.sqs.send_message(QueueUrl=stack.clients.queue_url(queue), MessageBody=body)


def test_poison_goes_to_the_dlq_with_its_reason_and_the_router_keeps_going(
    stack: Stack,
) -> None:
    add_user(stack, "u-bare")
    send_raw(stack, "{oops")
    unknown_type = {
        "event_id": "e-x",
        "type": "poke",
        "category": "activity",
        "priority": "normal",
        "user_id": "u-bare",
        "created_at": "2024-01-01T00:00:00.000000Z",
    }
    send_raw(stack, json.dumps(unknown_type))
    send_raw(stack, json.dumps({"type": "comment"}))
    good = post_event(stack, "follow", {"actor": "Ana"}, user_id="u-bare")

    consumer = build_consumer(stack.settings, stack.clients, router(stack))
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    dead: list[dict[str, Any]] = []
    try:

        def done() -> bool:
            dead.extend(stack.receive_all(f"{ROUTER_NORMAL}-dlq", attempts=1))
            return len(dead) >= 3 and stored(stack, good.event_id)[0].status.value == "SUCCESS"

        assert wait_until(done, timeout=30, interval=0.2)
    finally:
        stop.set()
        thread.join(15)
    reasons = sorted(m["MessageAttributes"]["error"]["StringValue"] for m in dead)
    assert reasons[0].startswith("body is not JSON")
    assert reasons[1].startswith("not an event: event_id: Field required")
    assert reasons[2] == "unknown event type 'poke'"
    assert receive(stack, ROUTER_NORMAL) == []


def lambda_record(message: QueueMessage) -> dict[str, Any]:
    return {
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": {"ApproximateReceiveCount": str(message.receive_count)},
        "messageAttributes": {
            k: {"stringValue": v, "dataType": "String"} for k, v in message.attributes.items()
        },
        "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{message.queue}",
    }


def test_the_lambda_handler_reports_only_the_poison_message(stack: Stack) -> None:
    add_user(stack, "u-1", email="ana@example.com")
    first = post_event(stack, "follow", {"actor": "Ana"}, user_id="u-1")
    send_raw(stack, "not json")
    second = post_event(stack, "like", {"actor": "Bo", "post": "p-1"}, user_id="u-1")
    messages = receive(stack, ROUTER_NORMAL)
    assert len(messages) == 3
    poison = next(m for m in messages if m.body == "not json")

    handle = sqs_lambda_handler(router(stack))
    response = handle({"Records": [lambda_record(m) for m in messages]}, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": poison.message_id}]}
    for event in (first, second):
        _, notifications = stored(stack, event.event_id)
        assert outcome(notifications["email"]) == ("QUEUED", None)
    queued = drain(stack, "email-normal")
    assert sorted(m["event_id"] for m in queued) == sorted([first.event_id, second.event_id])


def test_decoding_tells_poison_from_work(settings: Settings) -> None:
    event = Event(
        event_id="e-1",
        type="follow",
        category=Category.activity,
        priority=Priority.normal,
        topic="t",
        data={"actor": "Ana"},
        created_at="2024-01-01T00:00:00.000000Z",
    )
    envelope = json.dumps({"Type": "Notification", "Message": event.model_dump_json()})
    assert decode(envelope) == RouterWork(event)
    follow_up = continuation(event, "cursor-1", 3)
    assert decode(follow_up["MessageBody"]) == RouterWork(event, 3, "cursor-1")
    to_user = event.model_copy(update={"topic": None, "user_id": "u-1"})
    for body, reason in (
        ("[]", "body is not a JSON object"),
        (event.model_copy(update={"topic": None}).model_dump_json(), "exactly one of"),
        (continuation(to_user, "c", 1)["MessageBody"], "a continuation needs a topic event"),
        (json.dumps({"kind": "continuation", "event": {}}), "not an event: event.event_id"),
    ):
        with pytest.raises(Poison) as raised:
            decode(body)
        assert reason in raised.value.reason, raised.value.reason
    # No AWS call is made for a poison message: the result is decided from the body alone.
    bad = QueueMessage(queue=ROUTER_NORMAL, message_id="m", receipt_handle="r", body="[]")
    assert router_for(settings)([bad]) == [DeadLetter("body is not a JSON object")]


def router_for(settings: Settings) -> Router:
    return Router(settings, AwsClients(settings))
