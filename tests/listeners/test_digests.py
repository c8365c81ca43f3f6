"""Digests through the router, the close and the workers, against the emulator and the
provider sandbox: a window's events become one notification per channel, sent once
whatever is redelivered or races."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from core.catalogue.event_types import EVENT_TYPES, Digest, Priority
from core.catalogue.models import Event, EventRecord, EventStatus, iso, utcnow
from core.digests.items import DigestHead, digest_pk, parse_time
from core.digests.store import DigestStore
from core.directory.profiles import Preferences, ProfileFields
from core.directory.users import UserStore
from core.ledger.publisher import publish_events
from core.platform.settings import Settings
from core.timing.due_work import DueStore
from listeners.batch import BatchSettler
from listeners.digest_closing import build_digest_closer
from listeners.digesting import close_work, early_close_work
from listeners.due_sender import build_sender
from listeners.messages import Ack, QueueMessage
from listeners.router import Router
from listeners.worker import build_worker
from tests.conftest import Stack
from tests.factories import ledger_of, record

CHANNELS = ("sms", "email", "push")
WINDOW = Digest(window="10m", key="post")


@pytest.fixture
def live(stack: Stack, sandbox: Any) -> Stack:
    """The stack sending to the sandbox, with user u-1 on sms, email and push."""
    settings = Settings(
        **{
            **stack.settings.model_dump(),
            "sandbox": True,
            "sandbox_port": sandbox.port,
            "digest_type_defaults": True,
        }
    )
    sns = stack.clients.sns
    app = sns.create_platform_application(
        Name="herald-test-fcm", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )
    arn = sns.create_platform_endpoint(
        PlatformApplicationArn=app["PlatformApplicationArn"], Token=f"t-{uuid.uuid4()}"
    )["EndpointArn"]
    users = UserStore(stack.clients.dynamodb, stack.clients.names.table)
    users.put_profile(
        "u-1", ProfileFields(phone="+14155550123", email="ana@example.com", push_endpoints=[arn])
    )
    users.set_preferences(
        "u-1", Preferences.model_validate({"categories": {"activity": list(CHANNELS)}})
    )
    return Stack(settings, stack.clients)


def like(
    stack: Stack,
    actor: str,
    *,
    digest: Digest | None = WINDOW,
    priority: Priority | None = None,
    post: str = "p-7",
) -> Event:
    """Record and publish a like the way the API does."""
    spec = EVENT_TYPES["like"]
    event = Event(
        event_id=str(uuid.uuid4()),
        type="like",
        category=spec.category,
        priority=priority or spec.priority,
        user_id="u-1",
        data={"actor": actor, "post": post},
        created_at=iso(utcnow()),
        digest=digest,
    )
    record(ledger_of(stack), event)
    assert publish_events(stack.clients.sns, stack.clients.topic_arn, [event]) == {}
    return event


def received(stack: Stack, queue: str) -> list[QueueMessage]:
    return [QueueMessage.from_sqs(queue, raw) for raw in stack.receive_all(queue)]


def route(stack: Stack, router: Router | None = None) -> list[Any]:
    queue = stack.clients.names.router_queue("normal")
    messages = received(stack, queue)
    results = (router or Router(stack.settings, stack.clients))(messages)
    BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(messages, results)
    return results


def send_all(stack: Stack) -> None:
    """Route what waits, then have each channel's worker send what it was given."""
    route(stack)
    for channel in CHANNELS:
        queue = stack.clients.names.channel_queue(channel, "normal")
        messages = received(stack, queue)
        if not messages:
            continue
        _, handler, _ = build_worker(stack.settings, stack.clients, channel)
        try:
            results = handler(messages)
        finally:
            handler.close()
        BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(messages, results)


def head_of(stack: Stack, event: Event, spec: Digest = WINDOW) -> DigestHead:
    head = DigestStore(stack.clients.dynamodb, stack.clients.names.table).newest(
        digest_pk(event, spec)
    )
    assert head is not None
    return head


def stored(stack: Stack, event_id: str) -> tuple[EventRecord, list[dict[str, Any]]]:
    found = ledger_of(stack).event_reads.get(event_id)
    assert found is not None
    return found


def texts(sandbox: Any) -> list[str]:
    """What the fake providers were given to show: SMS bodies and email subjects."""
    out = [str(m["form"]["Body"]) for m in sandbox.messages("twilio")]
    return out + [str(m["json"]["subject"]) for m in sandbox.messages("sendgrid")]


def test_three_likes_in_a_window_are_one_notification_per_channel(
    live: Stack, sandbox: Any
) -> None:
    events = [like(live, actor) for actor in ("Bo", "Ann", "Cy")]
    assert route(live) == [Ack()] * 3
    assert texts(sandbox) == []
    head = head_of(live, events[0])
    for event in events:
        absorbed, notifications = stored(live, event.event_id)
        assert absorbed.status is EventStatus.DIGESTED
        assert absorbed.digest_event_id == head.digest_event_id and notifications == []
    # the close waits as due work (core.timing), found by its key
    due = DueStore(live.clients.dynamodb, live.clients.names.table, live.settings.due_shards)
    key = due.key_of(close_work(head))
    assert "Item" in live.clients.dynamodb.get_item(TableName=live.clients.names.table, Key=key)

    build_digest_closer(live.settings, live.clients)(close_work(head))
    send_all(live)

    assert sorted(texts(sandbox)) == [
        "Bo and 2 others liked your post",
        "Bo and 2 others liked your post p-7.",
    ]
    digest, notifications = stored(live, head.digest_event_id)
    assert digest.status is EventStatus.SUCCESS and digest.digest_id == head.ref
    assert (digest.data["count"], digest.data["actors"]) == (3, ["Bo", "Ann", "Cy"])
    assert sorted(n["channel"] for n in notifications) == sorted(CHANNELS)
    assert {n["status"] for n in notifications} == {"SENT"}


def test_a_redelivered_event_joins_its_digest_once(live: Stack, sandbox: Any) -> None:
    first, second = like(live, "Bo"), like(live, "Ann")
    assert route(live) == [Ack(), Ack()]
    # SNS delivers at least once: the same event again, after it was absorbed
    assert publish_events(live.clients.sns, live.clients.topic_arn, [second]) == {}
    assert route(live) == [Ack()]
    head = head_of(live, first)
    assert head.count == 2
    build_digest_closer(live.settings, live.clients)(close_work(head))
    send_all(live)
    assert sorted(texts(sandbox)) == [
        "Bo and 1 other liked your post",
        "Bo and 1 other liked your post p-7.",
    ]


def test_two_triggers_racing_send_one_digest(live: Stack, sandbox: Any) -> None:
    """Two routers absorb two events of one new digest at once, then two closes race."""
    events = [like(live, "Bo"), like(live, "Ann")]
    queue = live.clients.names.router_queue("normal")
    messages = received(live, queue)
    assert len(messages) == 2
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def absorb(message: QueueMessage) -> None:
        router = Router(live.settings, live.clients)
        barrier.wait()
        results.extend(router([message]))

    threads = [threading.Thread(target=absorb, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [Ack(), Ack()]
    BatchSettler(live.clients.sqs, live.clients.queue_url).settle(messages, [Ack(), Ack()])
    head = head_of(live, events[0])
    assert (head.generation, head.count) == (0, 2)

    closers = [build_digest_closer(live.settings, live.clients) for _ in range(2)]
    threads = [threading.Thread(target=c, args=(close_work(head),)) for c in closers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    send_all(live)
    assert len(sandbox.messages("twilio")) == 1
    assert len(sandbox.messages("sendgrid")) == 1
    _, notifications = stored(live, head.digest_event_id)
    assert len(notifications) == len(CHANNELS)


def test_leading_sends_the_first_at_once_and_digests_the_rest(live: Stack, sandbox: Any) -> None:
    first = like(live, "Bo", digest=None)  # the type's own digest: leading, by post
    send_all(live)
    assert sorted(texts(sandbox)) == ["Bo liked your post", "Bo liked your post p-7."]
    spec = EVENT_TYPES["like"].digest
    assert spec is not None and spec.leading
    like(live, "Ann", digest=None)
    like(live, "Cy", digest=None)
    assert route(live) == [Ack(), Ack()]
    assert stored(live, first.event_id)[0].status is EventStatus.SUCCESS
    head = head_of(live, first, spec)
    assert (head.count, head.actors, head.leading_event_id) == (2, ("Ann", "Cy"), first.event_id)
    sandbox.reset()
    build_digest_closer(live.settings, live.clients)(close_work(head))
    send_all(live)
    assert sorted(texts(sandbox)) == [
        "Ann and 1 other liked your post",
        "Ann and 1 other liked your post p-7.",
    ]


def test_max_items_closes_the_digest_early(live: Stack, sandbox: Any) -> None:
    spec = Digest(window="1h", key="post", max_items=2)
    first = like(live, "Bo", digest=spec)
    like(live, "Ann", digest=spec)
    assert route(live) == [Ack(), Ack()]
    head = head_of(live, first, spec)
    assert (head.status, head.close_reason, head.count) == ("CLOSED", "max_items", 2)
    send_all(live)  # the digest's event was published by the early close
    assert "Bo and 1 other liked your post p-7." in texts(sandbox)
    # the window's own close, if it still fires, sends nothing more
    build_digest_closer(live.settings, live.clients)(close_work(head))
    send_all(live)
    assert len(sandbox.messages("twilio")) == 1
    third = like(live, "Cy", digest=spec)
    assert route(live) == [Ack()]
    assert head_of(live, third, spec).generation == 1


def test_a_critical_event_is_never_digested(live: Stack, sandbox: Any) -> None:
    event = like(live, "Bo", priority=Priority.critical)
    route_queue = live.clients.names.router_queue("critical")
    messages = received(live, route_queue)
    results = Router(live.settings, live.clients)(messages)
    assert results == [Ack()]
    BatchSettler(live.clients.sqs, live.clients.queue_url).settle(messages, results)
    found, _ = stored(live, event.event_id)
    assert found.status is EventStatus.PROCESSING
    assert received(live, live.clients.names.channel_queue("sms", "critical"))


def test_the_due_sender_closes_a_window_at_its_end(live: Stack, sandbox: Any) -> None:
    first, _ = like(live, "Bo"), like(live, "Ann")
    assert route(live) == [Ack(), Ack()]
    head = head_of(live, first)
    ends = parse_time(head.closes_at)
    before = build_sender(live.settings, live.clients, clock=lambda: ends - timedelta(seconds=5))
    try:
        before.run_pass()
    finally:
        before.close()
    assert head_of(live, first).status == "OPEN"
    after = build_sender(live.settings, live.clients, clock=lambda: ends + timedelta(seconds=1))
    try:
        after.run_pass()
    finally:
        after.close()
    assert head_of(live, first).status == "CLOSED"
    send_all(live)
    assert sorted(texts(sandbox)) == [
        "Bo and 1 other liked your post",
        "Bo and 1 other liked your post p-7.",
    ]


def test_a_digest_filled_by_a_try_whose_answer_was_lost_closes_on_the_retry(
    live: Stack, sandbox: Any
) -> None:
    """The absorb that filled the digest applied, but its answer was lost before the early
    close: the retry finds the event absorbed already, and closes the full digest then,
    not at the window's end an hour later."""
    spec = Digest(window="1h", key="post", max_items=2)
    first = like(live, "Bo", digest=spec)
    assert route(live) == [Ack()]
    second = like(live, "Ann", digest=spec)
    store = DigestStore(live.clients.dynamodb, live.clients.names.table)
    due = DueStore(live.clients.dynamodb, live.clients.names.table, live.settings.due_shards)
    filled = store.absorb(second, spec, lambda head: due.schedule(close_work(head)))
    assert filled.outcome == "absorbed" and filled.head is not None and filled.head.full
    assert head_of(live, first, spec).status == "OPEN"  # the try ended here

    assert route(live) == [Ack()]  # the message, delivered again
    head = head_of(live, first, spec)
    assert (head.status, head.close_reason, head.count) == ("CLOSED", "max_items", 2)
    send_all(live)
    assert "Bo and 1 other liked your post p-7." in texts(sandbox)


def test_a_failed_early_close_is_retried_by_the_due_sender_soon(live: Stack, sandbox: Any) -> None:
    """The early close's retry, due seconds later, closes a full digest although its
    window has an hour to run."""
    spec = Digest(window="1h", key="post", max_items=2)
    first = like(live, "Bo", digest=spec)
    assert route(live) == [Ack()]
    second = like(live, "Ann", digest=spec)
    store = DigestStore(live.clients.dynamodb, live.clients.names.table)
    filled = store.absorb(second, spec, lambda head: None)
    assert filled.head is not None and filled.head.full
    closer = build_digest_closer(live.settings, live.clients)
    # a close due before the window's end that is not the retry (another router's lost
    # race) leaves the digest to its window
    closer(replace(close_work(filled.head), due_at=utcnow()))
    assert head_of(live, first, spec).status == "OPEN"
    closer(early_close_work(filled.head))
    head = head_of(live, first, spec)
    assert (head.status, head.close_reason, head.count) == ("CLOSED", "max_items", 2)
    send_all(live)
    assert "Bo and 1 other liked your post p-7." in texts(sandbox)
