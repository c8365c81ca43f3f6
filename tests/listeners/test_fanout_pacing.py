"""A large fan-out goes out at the workers' pace: its next page waits while the lane's
channel queues already hold enough work, instead of queueing every other event of the
lane behind it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from core.aws import dynamo
from core.catalogue.models import iso
from core.platform.settings import Settings
from listeners.messages import Ack
from listeners.reconciler import Reconciler
from listeners.router import Router
from tests.conftest import Stack
from tests.listeners.test_router import (
    MIDDAY_TOKYO,
    PREFIX,
    ROUTER_NORMAL,
    drain,
    post_event,
    receive,
    release,
    seed_subscribers,
    settle,
    stored,
)

TREND = {"chart": "Global Top 50", "artist": "Nova"}


def test_a_page_waits_while_its_lane_is_full_and_goes_once_it_drains(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"fanout_page_size": 10, "fanout_max_waiting": 10, "fanout_pace_seconds": 0}
    )
    seed_subscribers(stack, "charts.paced", [f"u-{i:02d}" for i in range(20)], "email")
    trend = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.paced")
    router = Router(settings, stack.clients, clock=lambda: MIDDAY_TOKYO)
    page0 = receive(stack, ROUTER_NORMAL)
    settle(stack, page0, router(page0))  # ten emails now wait in the lane

    page1 = receive(stack, ROUTER_NORMAL)
    assert router(page1) == [Ack()]
    settle(stack, page1, [Ack()])

    assert stored(stack, trend.event_id)[0].counts.total == 10  # page 1 created nothing
    (waiting,) = receive(stack, ROUTER_NORMAL)  # sent again, as a fresh message
    assert (json.loads(waiting.body)["page"], waiting.receive_count) == (1, 1)
    assert len(drain(stack, "email-normal")) == 10  # the workers take the first page

    assert router([waiting]) == [Ack()]
    settle(stack, [waiting], [Ack()])

    record, _ = stored(stack, trend.event_id)
    assert record.counts.total == 20 and record.fanout_complete
    assert len(drain(stack, "email-normal")) == 10
    assert receive(stack, ROUTER_NORMAL) == []  # the last page: nothing continues


def test_pacing_off_sends_every_page_at_once(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"fanout_page_size": 10, "fanout_max_waiting": 0})
    seed_subscribers(stack, "charts.unpaced", [f"u-{i:02d}" for i in range(20)], "email")
    trend = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.unpaced")
    router = Router(settings, stack.clients, clock=lambda: MIDDAY_TOKYO)
    for _ in range(2):
        page = receive(stack, ROUTER_NORMAL)
        settle(stack, page, router(page))

    assert stored(stack, trend.event_id)[0].counts.total == 20
    assert len(drain(stack, "email-normal")) == 20


def paced(stack: Stack, **update: Any) -> Settings:
    return stack.settings.model_copy(
        update={"fanout_page_size": 10, "fanout_pace_seconds": 0, **update}
    )


def fill(stack: Stack, queue: str, count: int) -> None:
    url = stack.clients.queue_url(f"{PREFIX}-{queue}")
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": "{}"} for i in range(min(10, count - start))]
        stack.clients.sqs.send_message_batch(QueueUrl=url, Entries=entries)


def test_only_the_channels_the_fan_out_uses_count(stack: Stack) -> None:
    """A backlog of texts does not hold an email-only topic; its own emails do."""
    seed_subscribers(stack, "charts.emails", [f"u-{i:02d}" for i in range(30)], "email")
    fill(stack, "sms-normal", 30)  # another event's texts, far over the limit
    trend = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.emails")
    router = Router(paced(stack, fanout_max_waiting=15), stack.clients, clock=lambda: MIDDAY_TOKYO)
    page0 = receive(stack, ROUTER_NORMAL)
    settle(stack, page0, router(page0))
    (page1,) = receive(stack, ROUTER_NORMAL)
    assert json.loads(page1.body)["channels"] == ["email"]
    settle(stack, [page1], router([page1]))  # 10 emails waiting < 15: it goes
    assert stored(stack, trend.event_id)[0].counts.total == 20

    (page2,) = receive(stack, ROUTER_NORMAL)  # now 20 emails wait: its own lane is full
    settle(stack, [page2], router([page2]))
    assert stored(stack, trend.event_id)[0].counts.total == 20
    (waiting,) = receive(stack, ROUTER_NORMAL)
    assert (json.loads(waiting.body)["page"], json.loads(waiting.body)["channels"]) == (
        2,
        ["email"],
    )


def test_a_page_waits_at_most_the_maximum_then_goes(stack: Stack) -> None:
    seed_subscribers(stack, "charts.stuck", [f"u-{i:02d}" for i in range(20)], "email")
    trend = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.stuck")
    settings = paced(stack, fanout_max_waiting=5, fanout_max_wait_seconds=60)
    router = Router(settings, stack.clients, clock=lambda: MIDDAY_TOKYO)
    now = [1_000_000.0]
    router.topic_pages.pacer.clock = lambda: now[0]
    page0 = receive(stack, ROUTER_NORMAL)
    settle(stack, page0, router(page0))  # ten emails wait, and are never taken here

    for waited in (0, 30, 59):  # waits, its first wait's time carried along
        now[0] = 1_000_000.0 + waited
        (page1,) = receive(stack, ROUTER_NORMAL)
        settle(stack, [page1], router([page1]))
        (again,) = receive(stack, ROUTER_NORMAL)
        assert json.loads(again.body)["waiting_since"] == 1_000_000.0
        release(stack, [again])
    assert stored(stack, trend.event_id)[0].counts.total == 10

    now[0] = 1_000_060.0  # a minute after its first wait: it goes, backlog or not
    (page1,) = receive(stack, ROUTER_NORMAL)
    settle(stack, [page1], router([page1]))
    record, _ = stored(stack, trend.event_id)
    assert record.counts.total == 20 and record.fanout_complete


def age(stack: Stack, event_id: str, seconds: float) -> None:
    """Set the event item's and its tally's times `seconds` back."""
    then = iso(datetime.now(UTC) - timedelta(seconds=seconds))
    for sk in (dynamo.EVENT_SK, dynamo.TALLY_SK):
        stack.clients.dynamodb.update_item(
            TableName=stack.clients.names.table,
            Key={dynamo.PK: {"S": dynamo.event_pk(event_id)}, dynamo.SK: {"S": sk}},
            UpdateExpression="SET updated_at = :t",
            ExpressionAttributeValues={":t": {"S": then}},
        )


def test_the_reconciler_takes_a_paced_fan_out_for_moving_and_its_delay_for_no_backlog(
    stack: Stack,
) -> None:
    seed_subscribers(stack, "charts.slow", [f"u-{i:02d}" for i in range(20)], "email")
    trend = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.slow")
    settings = paced(
        stack,
        fanout_max_waiting=5,
        fanout_pace_seconds=900,  # the delayed copy stays delayed throughout
        reconcile_grace_seconds=0.0,
    )
    router = Router(settings, stack.clients, clock=lambda: MIDDAY_TOKYO)
    page0 = receive(stack, ROUTER_NORMAL)
    settle(stack, page0, router(page0))
    # The fan-out looks as old as a stalled one, then its next page waits for the lane.
    age(stack, trend.event_id, settings.reconcile_stranded_seconds * 2)
    page1 = receive(stack, ROUTER_NORMAL)
    settle(stack, page1, router(page1))
    assert receive(stack, ROUTER_NORMAL) == []  # the page is delayed, not lost

    # Another event whose publish was lost, in the same lane.
    lost = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.other")
    drained = receive(stack, ROUTER_NORMAL)
    settle(stack, drained, [Ack()] * len(drained))

    report = Reconciler(settings, stack.clients).run_pass()
    assert report.repaired == 0  # pacing is not a stalled fan-out
    assert report.republished == 1 and report.deferred == 0  # the delayed page is no backlog
    assert stored(stack, lost.event_id)[0].publish_attempts == 2
