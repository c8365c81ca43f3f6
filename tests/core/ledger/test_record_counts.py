"""A user's event is counted from its records: its outcomes write no counter, yet it
settles once with exact counts, and every reader sees the counts while it is in flight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.main import create_app
from core.aws import dynamo
from core.aws.clients import AwsClients, CallLog
from core.catalogue.models import (
    DeliveryResult,
    EventStatus,
    NotificationMessage,
    NotificationStatus,
)
from core.ledger.outcome_records import LOST, RECORDED, Outcome
from core.ledger.record_counts import (
    COUNTED_RECORDS,
    MASKED_RECIPIENTS,
    ROUTED_AT,
    SELF_COUNTED_MAX,
    apply,
    counts_of,
    with_event,
)
from core.ledger.record_transitions import new_token
from core.ledger.wiring import build_ledger
from core.platform.errors import PermanentError
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import QueueMessage
from listeners.planner import Recipient, plan
from listeners.router import Router
from tests.conftest import AUTH, Stack
from tests.factories import OK, ScriptedNotifier, ledger_of
from tests.listeners.test_repairs import TREND
from tests.listeners.test_router import (
    COMMENT,
    MIDDAY_TOKYO,
    PREFIX,
    add_user,
    post_event,
    route_all,
    settle,
    user_store,
)

TWO_CHANNELS = {"categories": {"activity": ["email", "sms"]}}


def routed_user_event(stack: Stack) -> str:
    add_user(stack, "ana", TWO_CHANNELS, email="ana@example.com", phone="+14155550123")
    event = post_event(stack, "comment", COMMENT, user_id="ana")
    route_all(stack, Router(stack.settings, stack.clients, clock=lambda: MIDDAY_TOKYO))
    return event.event_id


def queued(stack: Stack, channel: str) -> list[QueueMessage]:
    queue = f"{PREFIX}-{channel}-normal"
    return [QueueMessage.from_sqs(queue, m) for m in stack.receive_all(queue, 1)]


def deliver(stack: Stack, channel: str, outcome: DeliveryResult | Exception = OK) -> None:
    handler = DeliveryHandler(
        notifier=ScriptedNotifier(outcome),
        ledger=ledger_of(stack),
        policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        lease_seconds=30,
    )
    try:
        batch = queued(stack, channel)
        assert batch
        settle(stack, batch, handler(batch))
    finally:
        handler.close()


def raw_item(stack: Stack, key: dict[str, Any]) -> dict[str, Any] | None:
    item = stack.clients.dynamodb.get_item(
        TableName=stack.clients.names.table, Key=key, ConsistentRead=True
    ).get("Item")
    return None if item is None else dynamo.from_item(item)


def test_a_user_event_settles_from_its_records_without_a_counter(stack: Stack) -> None:
    event_id = routed_user_event(stack)
    # The list rides on the event item, written with PROCESSING: no tally item at all.
    event = raw_item(stack, dynamo.event_key(event_id))
    assert event is not None and event["status"] == EventStatus.PROCESSING
    assert sorted(event[COUNTED_RECORDS]) == ["NOTIF#email#ana", "NOTIF#sms#ana"]
    assert raw_item(stack, dynamo.tally_key(event_id)) is None

    deliver(stack, "email")
    ledger = ledger_of(stack)
    record = ledger.event_reads.get_page(event_id, 100)[0]
    assert record is not None
    assert record.status is EventStatus.PROCESSING
    assert record.counts.model_dump() == {"total": 2, "sent": 1, "failed": 0, "skipped": 0}
    listed = {e["event_id"]: e for e in ledger.event_reads.list_events(user_id="ana").items}
    assert listed[event_id]["counts"]["sent"] == 1

    deliver(stack, "sms")
    record = ledger.event_reads.get_page(event_id, 100)[0]
    assert record is not None
    assert record.status is EventStatus.SUCCESS
    assert record.counts.model_dump() == {"total": 2, "sent": 2, "failed": 0, "skipped": 0}
    # The outcomes never wrote a counter.
    assert raw_item(stack, dynamo.tally_key(event_id)) is None
    with TestClient(create_app(stack.settings)) as client:
        body = client.get(f"/events/{event_id}", headers=AUTH).json()
    assert body["status"] == "SUCCESS" and body["counts"]["sent"] == 2


def test_a_failed_channel_fails_the_event_with_exact_counts(stack: Stack) -> None:
    event_id = routed_user_event(stack)
    deliver(stack, "email")
    # The last outcome is the failure: its worker settles from what it knows of its own.
    deliver(stack, "sms", PermanentError("number not in service"))

    record = ledger_of(stack).event_reads.get_page(event_id, 9)[0]
    assert record is not None
    assert record.status is EventStatus.FAILED
    assert record.counts.model_dump() == {"total": 2, "sent": 1, "failed": 1, "skipped": 0}


def test_a_repeated_outcome_is_recognised_and_counts_once(stack: Stack) -> None:
    event_id = routed_user_event(stack)
    ledger = ledger_of(stack)
    messages = [
        NotificationMessage.model_validate_json(m.body)
        for channel in ("email", "sms")
        for m in queued(stack, channel)
    ]
    assert all(m.counted_records for m in messages)
    token = new_token()
    claims = ledger.transitions.claim_many(messages, 30, token)
    assert all(c is not None and not isinstance(c, str) for c in claims)
    outcomes = [Outcome(m, token, NotificationStatus.SENT, provider="fake") for m in messages]
    assert ledger.outcomes.record_outcomes(outcomes) == [RECORDED, RECORDED]
    # The answer was lost and the same outcomes are written again: nothing changes.
    assert ledger.outcomes.record_outcomes(outcomes) != [RECORDED, RECORDED]
    settled = ledger.settlement.settle_events(
        {event_id: 1}, {event_id: messages[0].counted_records}
    )
    assert settled == {event_id: EventStatus.SUCCESS}
    assert ledger.tally.tally_of(event_id)["sent"] == 2
    # Someone else's token is refused.
    stranger = Outcome(messages[0], new_token(), NotificationStatus.SENT, provider="fake")
    assert ledger.outcomes.record_outcomes([stranger]) == [LOST]


def test_outcomes_of_a_self_counted_event_are_single_writes(stack: Stack, tmp_path: Path) -> None:
    """No counter to keep in step, so no transaction: DynamoDB bills a transaction's
    item twice."""
    event_id = routed_user_event(stack)
    settings = stack.settings.model_copy(update={"aws_call_log": str(tmp_path / "calls")})
    clients = AwsClients(settings)
    ledger = build_ledger(clients.dynamodb, clients.names.table)
    messages = [
        NotificationMessage.model_validate_json(m.body)
        for channel in ("email", "sms")
        for m in queued(stack, channel)
    ]
    token = new_token()
    ledger.transitions.claim_many(messages, 30, token)
    log = CallLog.for_path(settings.aws_call_log or "")
    before = dict(log.counts.get("dynamodb", {}))

    outcomes = [Outcome(m, token, NotificationStatus.SENT, provider="fake") for m in messages]
    assert ledger.outcomes.record_outcomes(outcomes) == [RECORDED, RECORDED]

    after = log.counts.get("dynamodb", {})
    calls = {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}
    assert calls == {"UpdateItem": 2}
    listed = {event_id: messages[0].counted_records}
    assert ledger.settlement.settle_events({event_id: 1}, listed) == {event_id: EventStatus.SUCCESS}


def test_only_small_plans_of_one_partition_count_from_their_records(stack: Stack) -> None:
    add_user(stack, "ana", TWO_CHANNELS, email="ana@example.com", phone="+14155550123")
    profile = user_store(stack).get("ana")
    assert profile is not None
    user_event = post_event(stack, "comment", COMMENT, user_id="ana")
    trend = post_event(stack, "trend.top_artist_changed", TREND, topic="charts.x")
    renderer = Router(stack.settings, stack.clients).renderer

    mine = plan(user_event, [Recipient(profile)], renderer, MIDDAY_TOKYO)
    assert mine and all(n.message.counted_records for n in mine)
    topical = plan(trend, [Recipient(profile, ["email"])], renderer, MIDDAY_TOKYO)
    assert topical and not any(n.message.counted_records for n in topical)
    crowd = [Recipient(profile)] * (SELF_COUNTED_MAX // 2 + 1)  # past the limit
    many = plan(user_event, crowd, renderer, MIDDAY_TOKYO)
    assert len(many) > SELF_COUNTED_MAX and not any(n.message.counted_records for n in many)


def test_counts_of_statuses_count_only_settled_ones() -> None:
    counts = counts_of(["SENT", "DELIVERED", "FAILED", "SKIPPED", "SENDING", None])
    assert counts == {"total": 6, "sent": 2, "failed": 1, "skipped": 1}


def test_the_event_items_list_merges_with_a_tally_item() -> None:
    """A tally item written after routing (the router's completion mark, a replayed dead
    letter's correction) must not hide the list on the event item, or an event with no
    records counted would look complete."""
    event = {
        "event_id": "e-1",
        COUNTED_RECORDS: {"NOTIF#email#ana"},
        MASKED_RECIPIENTS: {"NOTIF#email#ana": "a***@example.com"},
        ROUTED_AT: "2026-12-02T10:00:01.000+00:00",
        "fanout_complete": True,
    }
    tally = {
        "event_id": "e-1",
        "failed": -1,
        "updated_at": "2026-12-02T10:00:05.000+00:00",
        COUNTED_RECORDS: ["NOTIF#sms#ana"],
    }
    merged = with_event(tally, event)
    assert merged[COUNTED_RECORDS] == ["NOTIF#email#ana", "NOTIF#sms#ana"]
    assert merged[MASKED_RECIPIENTS] == {"NOTIF#email#ana": "a***@example.com"}
    assert merged["fanout_complete"] is True
    assert merged["updated_at"] == "2026-12-02T10:00:05.000+00:00"
    assert merged["failed"] == -1  # counts stay the tally's until the records replace them
    # Counted from the records: one listed record not written yet is still moving.
    counted = apply(merged, {"NOTIF#sms#ana": {"status": "SENT"}})
    assert (counted["total"], counted["sent"], counted["failed"]) == (2, 1, 0)
    # An event item without a list (a topic's, an unrouted one) changes nothing.
    assert with_event(tally, {"event_id": "e-1", "status": "PROCESSING"}) == tally
