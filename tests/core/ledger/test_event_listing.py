"""The sharded, day-bucketed listing indexes: events spread over partitions, listings merge
them newest first across shards and days, and a status leaves its index when it settles."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from core.aws import dynamo
from core.catalogue.event_types import Category, Priority
from core.catalogue.models import Event, EventStatus, iso, utcnow
from core.ledger import event_index
from core.ledger.wiring import Ledger
from tests.conftest import Stack
from tests.factories import ledger_of, record


def put_event(
    ledger: Ledger, *, days_ago: float = 0, type_: str = "follow", n: int | None = None
) -> Event:
    event = Event(
        # `n` makes the id, and so its shards, the same on every run.
        event_id=str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"event-{n}") if n is not None else uuid.uuid4()
        ),
        type=type_,
        category=Category.activity,
        priority=Priority.normal,
        user_id="u-1",
        created_at=iso(utcnow() - timedelta(days=days_ago)),
        tenant="default",
    )
    record(ledger, event)
    return event


def raw(stack: Stack, event_id: str) -> dict[str, Any]:
    item = stack.clients.dynamodb.get_item(
        TableName=stack.clients.names.table, Key=dynamo.event_key(event_id), ConsistentRead=True
    )["Item"]
    return dynamo.from_item(item)


def every_page(ledger: Ledger, **filters: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(200):
        page = ledger.event_reads.list_events(limit=7, cursor=cursor, **filters)
        seen += [e["event_id"] for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("the listing never ended")


def test_events_of_one_day_spread_over_every_shard(stack: Stack) -> None:
    ledger = ledger_of(stack)
    made = [put_event(ledger, n=i) for i in range(64)]
    day_keys = {raw(stack, e.event_id)["day_shard"] for e in made}
    assert len(day_keys) == event_index.LISTING_SHARDS
    status_keys = {raw(stack, e.event_id)["status_shard"] for e in made}
    assert {k.split("#")[0] for k in status_keys} == {"OPEN"}
    assert len(status_keys) == event_index.STATUS_SHARDS


def test_a_listing_merges_shards_and_days_newest_first(stack: Stack) -> None:
    ledger = ledger_of(stack)
    made = [put_event(ledger, days_ago=d / 4) for d in range(30)]  # over eight days
    newest_first = [e.event_id for e in sorted(made, key=lambda e: e.created_at, reverse=True)]
    assert every_page(ledger) == newest_first
    assert every_page(ledger, tenant="default") == newest_first
    assert every_page(ledger, type_="follow") == newest_first
    assert every_page(ledger, type_="like") == []


def test_a_settled_event_leaves_the_status_index_and_a_failed_one_enters_it(
    stack: Stack,
) -> None:
    ledger = ledger_of(stack)
    ok, bad = put_event(ledger), put_event(ledger)
    for event in (ok, bad):
        assert ledger.event_status.transition(
            event.event_id, EventStatus.START, EventStatus.PROCESSING
        )
    # Routed: the entry stays on its OPEN key, the projected status moves.
    assert raw(stack, ok.event_id)["status_shard"].startswith("OPEN#")
    assert set(every_page(ledger, status="PROCESSING")) == {ok.event_id, bad.event_id}
    assert every_page(ledger, status="START") == []
    status = ledger.event_status
    assert status.transition(ok.event_id, EventStatus.PROCESSING, EventStatus.SUCCESS)
    assert ledger.event_status.fail(bad.event_id, "provider down")

    assert "status_shard" not in raw(stack, ok.event_id)
    assert raw(stack, bad.event_id)["status_shard"].startswith("FAILED#")
    assert every_page(ledger, status="FAILED") == [bad.event_id]
    assert every_page(ledger, status="PROCESSING") == []
    # SUCCESS is not indexed: the day index is read and filtered.
    assert every_page(ledger, status="SUCCESS") == [ok.event_id]


def test_an_empty_week_costs_a_short_page_not_an_unbounded_read(stack: Stack) -> None:
    ledger = ledger_of(stack)
    old = put_event(ledger, days_ago=12)
    first = ledger.event_reads.list_events(limit=5)
    assert first.items == [] and first.next_cursor is not None
    assert every_page(ledger) == [old.event_id]


def test_listing_indexes_project_keys_and_immutable_attributes_only(stack: Stack) -> None:
    table = stack.clients.dynamodb.describe_table(TableName=stack.clients.names.table)["Table"]
    projections = {
        g["IndexName"]: (g["Projection"]["ProjectionType"], g["Projection"].get("NonKeyAttributes"))
        for g in table["GlobalSecondaryIndexes"]
    }
    assert projections[event_index.BY_DAY] == ("INCLUDE", ["tenant"])
    assert projections[event_index.BY_TYPE] == ("KEYS_ONLY", None)
    assert projections[event_index.BY_USER] == ("KEYS_ONLY", None)
    status_projection = projections[event_index.BY_STATUS]
    assert status_projection[0] == "INCLUDE"
    assert "data_json" not in (status_projection[1] or [])


def test_events_are_not_in_the_other_entities_indexes(stack: Stack) -> None:
    ledger = ledger_of(stack)
    put_event(ledger)
    found = stack.clients.dynamodb.query(
        TableName=stack.clients.names.table,
        IndexName=dynamo.GSI_BY_STATUS,
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "START"}},
    )
    assert found["Items"] == []


def test_a_forged_listing_cursor_is_refused(stack: Stack) -> None:
    import pytest

    ledger = ledger_of(stack)
    for cursor in ("not-base64!!", "eyJhIjoxfQ", "eyJnIjoiMjAyNiIsImsiOiIifQ"):
        with pytest.raises(dynamo.BadCursor):
            ledger.event_reads.list_events(cursor=cursor)
