"""A large fan-out goes out at the workers' pace: its next page waits while the lane's
channel queues already hold enough work, instead of queueing every other event of the
lane behind it."""

from __future__ import annotations

import json

from listeners.messages import Ack
from listeners.router import Router
from tests.conftest import Stack
from tests.listeners.test_router import (
    MIDDAY_TOKYO,
    ROUTER_NORMAL,
    drain,
    post_event,
    receive,
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
