"""What AWS loses, the reconciler finds: stranded records, unfinished fan-outs, events no
router takes, and stuck events never hidden behind others."""

from __future__ import annotations

import time
from typing import Any

from core.catalogue.models import EventStatus, NotificationStatus
from listeners.messages import DeadLetter, QueueMessage
from listeners.reconciler import Reconciler
from listeners.router import Router
from tests.conftest import Stack
from tests.factories import ledger_of
from tests.listeners.test_router import (
    COMMENT,
    MIDDAY_TOKYO,
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


def reconciler(stack: Stack, **settings: Any) -> Reconciler:
    values = {
        "reconcile_grace_seconds": 0.0,
        "reconcile_stranded_seconds": 0.0,
        **settings,
    }
    return Reconciler(stack.settings.model_copy(update=values), stack.clients)


def test_a_queued_record_whose_message_was_lost_is_enqueued_again(stack: Stack) -> None:
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    event = post_event(stack, "comment", COMMENT, user_id="u-1")
    route_all(stack, router(stack))
    assert len(drain(stack, "email-normal")) == 1  # ...and the message is lost

    report = reconciler(stack).run_pass()

    assert report.repaired == 1
    repair = receive(stack, ROUTER_NORMAL)
    assert [m.attributes.get("repair") for m in repair] == ["true"]
    settle(stack, repair, router(stack)(repair))
    again = drain(stack, "email-normal")
    assert [m["event_id"] for m in again] == [event.event_id]
    record, notifications = stored(stack, event.event_id)
    assert record.counts.total == 1  # nothing created or counted twice
    assert notifications["email"]["status"] == NotificationStatus.QUEUED


def test_an_event_no_router_takes_fails_with_the_reason(stack: Stack) -> None:
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    event = post_event(stack, "comment", COMMENT, user_id="u-1")
    fix = reconciler(stack, reconcile_max_publishes=3)
    for expected in (1, 1):  # republished while it has publishes left
        drain(stack, "events-normal")  # each publish is taken and lost
        assert fix.run_pass().republished == expected
        fix._watermarks.clear()
    drain(stack, "events-normal")
    assert fix.run_pass().republished == 0
    record, _ = stored(stack, event.event_id)
    assert record.status is EventStatus.FAILED
    assert record.reason == "not routed after 3 publishes"


def test_an_event_waiting_behind_a_router_backlog_is_neither_republished_nor_failed(
    stack: Stack,
) -> None:
    """Its message is still in the queue: publishing again would only deepen the backlog,
    and failing it would lose notifications the router is about to create."""
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    event = post_event(stack, "comment", COMMENT, user_id="u-1")
    fix = reconciler(stack, reconcile_max_publishes=1)

    report = fix.run_pass()

    assert (report.republished, report.failed, report.deferred) == (0, 0, 1)
    record, _ = stored(stack, event.event_id)
    assert record.status is EventStatus.START and record.publish_attempts == 1
    route_all(stack, router(stack))  # the router catches up and routes it
    fix._watermarks.clear()
    after = fix.run_pass()
    assert (after.republished, after.failed) == (0, 0)
    assert stored(stack, event.event_id)[0].status is EventStatus.PROCESSING


def test_a_record_waiting_behind_its_channel_backlog_is_not_repaired(stack: Stack) -> None:
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    event = post_event(stack, "comment", COMMENT, user_id="u-1")
    route_all(stack, router(stack))  # the email message waits in its queue
    fix = reconciler(stack, reconcile_max_repairs=1)

    report = fix.run_pass()

    assert (report.repaired, report.stranded_failed, report.deferred) == (0, 0, 1)
    assert receive(stack, ROUTER_NORMAL) == []
    assert stored(stack, event.event_id)[1]["email"]["status"] == NotificationStatus.QUEUED
    drain(stack, "email-normal")  # now the message is lost: the next pass repairs
    fix._watermarks.clear()
    assert fix.run_pass().repaired == 1


def test_stuck_events_do_not_hide_newer_ones(stack: Stack) -> None:
    """Pages resume from a watermark: with one page a pass, the second pass reaches the
    events after the first page instead of reading the same stuck page again."""
    ledger = ledger_of(stack)
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    posted = [post_event(stack, "comment", COMMENT, user_id="u-1") for _ in range(105)]
    assert len(drain(stack, "events-normal")) == 105  # taken and lost
    fix = reconciler(stack, reconcile_pages_per_pass=1)

    first = fix.run_pass().republished
    drain(stack, "events-normal")
    second = fix.run_pass().republished

    assert (first, second) == (100, 5)
    attempts = {
        e.event_id: ledger.event_reads.get(e.event_id)[0].publish_attempts  # type: ignore[index]
        for e in posted
    }
    assert set(attempts.values()) == {2}  # each republished exactly once


def test_a_router_message_on_its_last_receive_fails_the_event(stack: Stack) -> None:
    event = post_event(stack, "comment", COMMENT, user_id="u-1")
    (message,) = receive(stack, ROUTER_NORMAL)
    budget = stack.settings.receive_budget
    last = QueueMessage(
        message.queue,
        message.message_id,
        message.receipt_handle,
        message.body,
        receive_count=budget,
        attributes=message.attributes,
    )

    class Broken(Router):
        def route(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("routing bug")

    (result,) = Broken(stack.settings, stack.clients)([last])

    assert isinstance(result, DeadLetter) and "routing gave up" in result.reason
    record, _ = stored(stack, event.event_id)
    assert record.status is EventStatus.FAILED
    assert record.reason is not None and "routing bug" in record.reason


def test_stranded_records_are_failed_after_the_last_repair(stack: Stack) -> None:
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    event = post_event(stack, "comment", COMMENT, user_id="u-1")
    route_all(stack, router(stack))
    drain(stack, "email-normal")
    fix = reconciler(stack, reconcile_max_repairs=1)
    assert fix.run_pass().repaired == 1
    fix._watermarks.clear()
    drain(stack, "herald-test-events-normal".removeprefix("herald-test-"))

    report = fix.run_pass()

    assert report.stranded_failed == 1
    record, notifications = stored(stack, event.event_id)
    assert notifications["email"]["status"] == NotificationStatus.FAILED
    assert notifications["email"]["last_error"] == "stranded: gave up after 1 repairs"
    assert record.status is EventStatus.FAILED
    assert (record.counts.total, record.counts.failed) == (1, 1)


def test_repairs_back_off_while_the_last_one_may_still_be_running(stack: Stack) -> None:
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    post_event(stack, "comment", COMMENT, user_id="u-1")
    route_all(stack, router(stack))
    drain(stack, "email-normal")  # the message is lost
    fix = reconciler(stack, reconcile_stranded_seconds=0.4)
    time.sleep(0.5)
    assert fix.run_pass().repaired == 1

    fix._watermarks.clear()
    assert fix.run_pass().repaired == 0  # the second waits twice the period
    time.sleep(0.9)
    fix._watermarks.clear()
    assert fix.run_pass().repaired == 1


def _age(stack: Stack, key: dict[str, Any], seconds: float, *, created: bool = False) -> None:
    """Make an item look untouched for `seconds` (its updated_at, and with `created` its
    listing sort key, in the past)."""
    from datetime import timedelta

    from core.catalogue.models import iso, utcnow

    then = iso(utcnow() - timedelta(seconds=seconds))
    update = "SET updated_at = :then"
    values = {":then": {"S": then}}
    if created:
        update += ", event_key = :created"
        values[":created"] = {"S": f"{then}#{key['PK']['S']}"}
    stack.clients.dynamodb.update_item(
        TableName=stack.clients.names.table,
        Key=key,
        UpdateExpression=update,
        ExpressionAttributeValues=values,
    )


def test_a_fan_out_still_counting_is_not_repaired(stack: Stack) -> None:
    """Counting touches the tally, not the event item: an event item that looks stale
    while its tally moves is a fan-out in progress, not a stalled one."""
    from core.aws import dynamo

    for i in range(3):
        add_user(stack, f"u-{i}", EMAIL, email=f"u{i}@example.com")
        user_store(stack).subscribe("charts.x", f"u-{i}", ["email"])
    event = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.x")
    settings = stack.settings.model_copy(update={"fanout_page_size": 1})
    messages = receive(stack, ROUTER_NORMAL)
    settle(stack, messages, Router(settings, stack.clients, clock=lambda: MIDDAY_TOKYO)(messages))
    _age(stack, dynamo.event_key(event.event_id), 120, created=True)
    fix = reconciler(stack, reconcile_grace_seconds=30.0, reconcile_stranded_seconds=60.0)

    walked = fix._walk(30.0)
    assert [e["event_id"] for e in walked if e["status"] == EventStatus.PROCESSING] == [
        event.event_id
    ]
    fix._watermarks.clear()
    assert fix.run_pass().repaired == 0  # the tally was counted just now

    _age(stack, dynamo.tally_key(event.event_id), 120)
    fix._watermarks.clear()
    assert fix.run_pass().deferred == 1  # the next page still waits for the router
    drain(stack, "events-normal")  # ...and is lost
    fix._watermarks.clear()
    assert fix.run_pass().repaired == 1  # nothing counted for two minutes: stalled
