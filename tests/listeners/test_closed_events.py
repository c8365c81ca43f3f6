"""A settled event is never routed: a FAILED event's message, taken late (the reconciler
gave up while the router retried, or a redelivery), sends nothing, creates nothing, and the
event stays FAILED with its reason; record creation itself refuses a settled event."""

from __future__ import annotations

from typing import Any

import pytest

from core.catalogue.models import EventStatus
from core.ledger.notification_records import EventClosed, NewNotification
from core.operations.dead_letters import DeadLetters
from listeners.messages import Ack, DeadLetter, QueueMessage
from listeners.router import Router
from tests.conftest import Stack
from tests.factories import ledger_of, notification, processing_event
from tests.listeners.test_router import (
    COMMENT,
    PER_EVENT,
    ROUTER_NORMAL,
    add_user,
    drain,
    post_event,
    receive,
    route_all,
    router,
    settle,
    stored,
    user_store,
)

EMAIL = {"categories": {"activity": ["email"], "trend": ["email"]}}
TREND = {"chart": "Top 50", "artist": "Nova"}


def test_a_user_event_failed_before_the_router_took_it_is_not_routed(stack: Stack) -> None:
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    event = post_event(stack, "comment", COMMENT, user_id="u-1")
    # The reconciler gave up on it while its message was still on its way.
    assert ledger_of(stack).event_status.fail(event.event_id, "not routed after 3 publishes")

    assert route_all(stack, router(stack)) == [Ack()]

    assert drain(stack, "email-normal") == []  # nothing to send
    record, notifications = stored(stack, event.event_id)
    assert record.status is EventStatus.FAILED
    assert record.reason == "not routed after 3 publishes"
    assert notifications == {}
    assert receive(stack, ROUTER_NORMAL) == []  # acknowledged, not retried for ever


def test_a_topic_page_taken_after_the_event_failed_creates_and_sends_nothing(
    stack: Stack,
) -> None:
    for i in range(2):
        add_user(stack, f"u-{i}", EMAIL, email=f"u{i}@example.com")
        user_store(stack).subscribe("charts.x", f"u-{i}", ["email"])
    event = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.x")
    paged = router(stack, settings=stack.settings.model_copy(update={"fanout_page_size": 1}))
    assert route_all(stack, paged) == [Ack()]  # page 0, and the continuation is sent
    assert len(drain(stack, "email-normal")) == 1
    assert ledger_of(stack).event_status.fail(event.event_id, "routing gave up")

    continuation = receive(stack, ROUTER_NORMAL)
    assert len(continuation) == 1
    results = paged(continuation)
    settle(stack, continuation, results)

    assert results == [Ack()]
    assert drain(stack, "email-normal") == []
    record, _ = stored(stack, event.event_id)
    assert record.status is EventStatus.FAILED
    assert record.counts.total == 1  # page 1 created nothing


def test_records_are_created_only_for_an_open_event(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="charts.y")
    assert ledger.event_status.fail(event.event_id, "given up")

    with pytest.raises(EventClosed) as closed:
        ledger.creation.create_counted([NewNotification(notification(event))])

    assert closed.value.status == EventStatus.FAILED.value
    _, notifications = stored(stack, event.event_id)
    assert notifications == {}


def test_an_event_the_router_gave_up_on_is_reopened_by_its_redrive_and_only_so(
    stack: Stack,
) -> None:
    """The events DLQ's redrive reopens the event (FAILED → PROCESSING) before its message
    goes back; an event FAILED for another reason is not reopened, and its message stays."""
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    gave_up = post_event(stack, "comment", COMMENT, user_id="u-1")
    given_up = post_event(stack, "comment", COMMENT, user_id="u-1")
    messages = receive(stack, ROUTER_NORMAL)
    budget = stack.settings.receive_budget  # the last receive: the router gives up
    last = [
        QueueMessage(m.queue, m.message_id, m.receipt_handle, m.body, budget, m.attributes)
        for m in messages
    ]

    class Broken(Router):
        def route(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("routing bug")

    results = Broken(stack.settings.model_copy(update=PER_EVENT), stack.clients)(last)
    settle(stack, last, results)
    assert all(isinstance(r, DeadLetter) for r in results)
    ledger = ledger_of(stack)
    # The second one's failure is then overtaken by another's verdict on it.
    assert ledger.event_status.transition(
        given_up.event_id, EventStatus.FAILED, EventStatus.FAILED, routing_failed=False
    )

    report = DeadLetters(stack.clients, ledger).redrive("events-normal")

    assert report.events_reopened == [gave_up.event_id]
    assert len(report.redriven) == 1 and len(report.refused) == 1
    assert stored(stack, gave_up.event_id)[0].status is EventStatus.PROCESSING
    assert route_all(stack, router(stack)) == [Ack()]
    assert [m["event_id"] for m in drain(stack, "email-normal")] == [gave_up.event_id]
    assert stored(stack, given_up.event_id)[0].status is EventStatus.FAILED
