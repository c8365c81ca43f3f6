"""A topic's fan-out counts its outcomes on several tally items, so that thousands of
outcomes a second do not all write one partition key; the event still settles once, with
exact counts, and every reader sees the shards summed."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api.main import create_app
from core.aws import dynamo
from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger.event_tally import TALLY_SHARDS
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import QueueMessage
from listeners.router import Router
from tests.conftest import AUTH, Stack
from tests.factories import OK, ScriptedNotifier, ledger_of
from tests.listeners.test_repairs import EMAIL, TREND, reconciler
from tests.listeners.test_router import (
    MIDDAY_TOKYO,
    PREFIX,
    add_user,
    post_event,
    route_all,
    settle,
    user_store,
)

EMAIL_QUEUE = f"{PREFIX}-email-normal"
SUBSCRIBERS = 24


def tally_items(stack: Stack, event_id: str) -> dict[int, dict[str, Any]]:
    """The event's tally shards that exist, by shard number."""
    keys = [dynamo.tally_key(event_id, k) for k in range(TALLY_SHARDS)]
    found = stack.clients.dynamodb.batch_get_item(
        RequestItems={stack.clients.names.table: {"Keys": keys, "ConsistentRead": True}}
    )["Responses"][stack.clients.names.table]
    items = [dynamo.from_item(i) for i in found]
    return {int(i.get("tally_shard", 0)): i for i in items}


def routed_topic_event(stack: Stack) -> str:
    for i in range(SUBSCRIBERS):
        add_user(stack, f"u-{i}", EMAIL, email=f"u{i}@example.com")
        user_store(stack).subscribe("charts.big", f"u-{i}", ["email"])
    event = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.big")
    route_all(stack, Router(stack.settings, stack.clients, clock=lambda: MIDDAY_TOKYO))
    return event.event_id


def deliver_all(stack: Stack) -> None:
    handler = DeliveryHandler(
        notifier=ScriptedNotifier(OK),
        ledger=ledger_of(stack),
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        lease_seconds=30,
    )
    try:
        while batch := [
            QueueMessage.from_sqs(EMAIL_QUEUE, m) for m in stack.receive_all(EMAIL_QUEUE, 1)
        ]:
            settle(stack, batch, handler(batch))
    finally:
        handler.close()


def test_a_topic_fan_out_counts_on_shards_and_settles_once(stack: Stack) -> None:
    event_id = routed_topic_event(stack)
    deliver_all(stack)

    items = tally_items(stack, event_id)
    assert items[0]["tally_shards"] == TALLY_SHARDS
    assert items[0]["total"] == SUBSCRIBERS
    assert len(items) > 2  # outcomes spread over several shards
    # Each shard but the first in a partition of its own: they share no write limit.
    partitions = {dynamo.tally_key(event_id, k)["PK"]["S"] for k in items}
    assert len(partitions) == len(items)
    assert sum(int(i.get("sent", 0)) for i in items.values()) == SUBSCRIBERS

    reads = ledger_of(stack).event_reads
    found = reads.get(event_id)
    assert found is not None
    record, _ = found
    assert record.status is EventStatus.SUCCESS
    assert (record.counts.total, record.counts.sent) == (SUBSCRIBERS, SUBSCRIBERS)
    (listed,) = [e for e in reads.list_events().items if e["event_id"] == event_id]
    assert listed["counts"]["sent"] == SUBSCRIBERS


def test_the_api_sums_the_shards(stack: Stack) -> None:
    event_id = routed_topic_event(stack)
    deliver_all(stack)
    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as client:
        shown = client.get(f"/events/{event_id}").json()
    assert shown["counts"]["sent"] == SUBSCRIBERS
    assert len(shown["notifications"]) == SUBSCRIBERS


def test_settling_from_records_puts_the_true_counts_on_shard_zero(stack: Stack) -> None:
    event_id = routed_topic_event(stack)
    deliver_all(stack)
    ledger = ledger_of(stack)
    # A tally gone wrong (a count applied twice) on one shard, event still PROCESSING.
    shard = next(k for k in tally_items(stack, event_id) if k)
    stack.clients.dynamodb.update_item(
        TableName=stack.clients.names.table,
        Key=dynamo.tally_key(event_id, shard),
        UpdateExpression="ADD sent :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    assert ledger.event_status.transition(event_id, EventStatus.SUCCESS, EventStatus.PROCESSING)

    assert reconciler(stack).run_pass().settled == 1

    items = tally_items(stack, event_id)
    assert items[0]["sent"] == SUBSCRIBERS
    assert all(int(i.get("sent", 0)) == 0 for k, i in items.items() if k)
    found = ledger.event_reads.get(event_id)
    assert found is not None and found[0].counts.sent == SUBSCRIBERS


def test_a_topic_fan_out_keeps_its_records_on_partitions_of_their_own(stack: Stack) -> None:
    event_id = routed_topic_event(stack)
    deliver_all(stack)
    found = ledger_of(stack).event_reads.get(event_id)
    assert found is not None
    partitions = {n["PK"] for n in found[1]}
    assert len(found[1]) == SUBSCRIBERS
    assert len(partitions) > 4
    assert all(p.startswith(f"{dynamo.event_pk(event_id)}#R") for p in partitions)

    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as client:
        first = client.get(f"/events/{event_id}").json()
        assert len(first["notifications"]) == SUBSCRIBERS
        assert first["notifications_cursor"] is None
        seen: list[str] = []
        page = client.get(f"/events/{event_id}/notifications", params={"limit": 5}).json()
        seen += [n["notification_id"] for n in page["items"]]
        cursor = page["next_cursor"]
        while cursor:
            page = client.get(
                f"/events/{event_id}/notifications", params={"cursor": cursor, "limit": 5}
            ).json()
            assert len(page["items"]) <= 5
            seen += [n["notification_id"] for n in page["items"]]
            cursor = page["next_cursor"]
    assert sorted(seen) == sorted(n["notification_id"] for n in found[1])


def test_a_receipt_finds_a_record_on_its_partition(stack: Stack) -> None:
    event_id = routed_topic_event(stack)
    deliver_all(stack)
    ledger = ledger_of(stack)
    assert ledger.receipts.record_shards_of(event_id) > 1
    receipt = (event_id, "email", "u-3")
    applied = ledger.receipts.apply(
        "sendgrid", "r-1", 600, receipt, NotificationStatus.DELIVERED, None
    )
    assert applied.value == "updated"
    found = ledger.event_reads.get(event_id)
    assert found is not None
    statuses = {n["recipient_id"]: n["status"] for n in found[1]}
    assert statuses["u-3"] == "DELIVERED"
    assert sorted(set(statuses.values())) == ["DELIVERED", "SENT"]
