"""A topic event that reaches nobody says so on the event instead of passing as delivered."""

from __future__ import annotations

from core.aws import dynamo
from core.catalogue.models import EventStatus
from core.directory.keys import PROFILE_SK
from core.security.tenants import Tenant
from tests.conftest import Stack
from tests.listeners.test_router import (
    ROUTER_NORMAL,
    post_event,
    route_all,
    router,
    seed_subscribers,
    stored,
)

TREND = {"chart": "Global Top 50", "artist": "Nova"}


def test_a_topic_without_subscribers_settles_with_the_reason(stack: Stack) -> None:
    event = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.glbal")
    route_all(stack, router(stack), ROUTER_NORMAL)

    record, notifications = stored(stack, event.event_id)
    assert record.status is EventStatus.SUCCESS and notifications == {}
    assert record.reason == "topic: 'charts.glbal' has no subscribers; nothing was sent"


def test_a_tenants_topic_is_named_as_the_tenant_wrote_it(stack: Stack) -> None:
    topic = Tenant("acme").qualify("charts.global")
    gone = Tenant("acme").qualify("u-gone")
    seed_subscribers(stack, topic, [gone], "email")
    # The profile deleted, the subscription left behind (a crash between the two deletes).
    stack.clients.dynamodb.delete_item(
        TableName=stack.clients.names.table,
        Key=dynamo.to_item({"PK": dynamo.user_pk(gone), "SK": PROFILE_SK}),
    )
    event = post_event(stack, "trend.top_artist_changed", TREND, topic=topic)
    route_all(stack, router(stack), ROUTER_NORMAL)

    record, _ = stored(stack, event.event_id)
    assert record.status is EventStatus.SUCCESS
    assert record.reason == "topic: none of the 1 subscriber(s) of 'charts.global' has a profile"
