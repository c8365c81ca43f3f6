"""Events recorded several to a call: conditional puts in one transaction, each told
whether its id was free, within DynamoDB's and SNS's batch limits."""

from __future__ import annotations

import uuid
from pathlib import Path

from core.aws.clients import AwsClients, CallLog
from core.catalogue.event_types import Category, Priority
from core.catalogue.models import Event, iso, utcnow
from core.ledger.event_items import EventExists
from core.ledger.publisher import publish_events
from core.ledger.wiring import build_ledger
from tests.conftest import Stack
from tests.listeners.test_batching import calls_since


def comment(user_id: str = "u-1", data: dict[str, object] | None = None) -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        type="comment",
        category=Category.activity,
        priority=Priority.normal,
        user_id=user_id,
        data=data if data is not None else {"actor": "A", "post": "p", "text": "t"},
        created_at=iso(utcnow()),
    )


def counting(stack: Stack, tmp_path: Path) -> tuple[AwsClients, CallLog]:
    settings = stack.settings.model_copy(update={"aws_call_log": str(tmp_path / "calls")})
    return AwsClients(settings), CallLog.for_path(str(tmp_path / "calls"))


def test_a_batch_is_one_transaction_and_a_taken_id_only_cancels_its_own_put(
    stack: Stack, tmp_path: Path
) -> None:
    clients, log = counting(stack, tmp_path)
    ledger = build_ledger(clients.dynamodb, clients.names.table)
    events = ledger.event_writes
    taken = comment("u-0")
    assert events.put_new_batch([events.new_record(taken)]) == [None]
    fresh = [comment(f"u-{i}") for i in range(1, 4)]
    again = taken.model_copy(update={"data": {"actor": "B", "post": "p", "text": "t"}})
    repeat = fresh[0].model_copy()
    batch = [events.new_record(e) for e in (again, *fresh, repeat)]
    before = {service: dict(ops) for service, ops in log.counts.items()}

    outcomes = events.put_new_batch(batch)

    # One transaction cancelled by the taken id, one that records the three new events.
    assert calls_since(log, before) == {"dynamodb": {"TransactWriteItems": 2}}
    first, *middle, last = outcomes
    assert isinstance(first, EventExists)
    assert first.existing.event_id == taken.event_id
    assert first.existing.data == taken.data  # the stored original, not the new payload
    assert middle == [None, None, None]
    # The same id twice in one batch is recorded once; the repeat learns it exists.
    assert isinstance(last, EventExists) and last.existing.event_id == fresh[0].event_id
    for event in fresh:
        stored = ledger.event_reads.get(event.event_id)
        assert stored is not None and stored[0].user_id == event.user_id


def test_a_lone_record_is_a_plain_put(stack: Stack, tmp_path: Path) -> None:
    clients, log = counting(stack, tmp_path)
    ledger = build_ledger(clients.dynamodb, clients.names.table)
    events = ledger.event_writes
    before = {service: dict(ops) for service, ops in log.counts.items()}
    event = comment()
    assert events.put_new_batch([events.new_record(event)]) == [None]
    assert calls_since(log, before) == {"dynamodb": {"PutItem": 1}}
    [outcome] = events.put_new_batch([events.new_record(event)])
    assert isinstance(outcome, EventExists) and outcome.existing.event_id == event.event_id


def test_records_over_four_megabytes_are_split_across_transactions(
    stack: Stack, tmp_path: Path
) -> None:
    clients, log = counting(stack, tmp_path)
    ledger = build_ledger(clients.dynamodb, clients.names.table)
    events = ledger.event_writes
    big = [comment(f"u-{i}", {"text": "x" * 240_000}) for i in range(20)]  # about 4.8 MB
    before = {service: dict(ops) for service, ops in log.counts.items()}

    assert events.put_new_batch([events.new_record(e) for e in big]) == [None] * 20

    assert calls_since(log, before) == {"dynamodb": {"TransactWriteItems": 2}}
    assert all(ledger.event_reads.get(e.event_id) is not None for e in big)


def test_publish_batches_stay_under_the_sns_size_limit(stack: Stack, tmp_path: Path) -> None:
    clients, log = counting(stack, tmp_path)
    # Each about 120 KB: two fit in one 256 KiB PublishBatch, the third goes in another.
    big = [comment(f"u-{i}", {"text": "x" * 120_000}) for i in range(3)]
    topic_arn = clients.topic_arn
    before = {service: dict(ops) for service, ops in log.counts.items()}

    assert publish_events(clients.sns, topic_arn, big) == {}

    assert calls_since(log, before) == {"sns": {"PublishBatch": 2}}
    delivered = stack.receive_all("herald-test-events-normal")
    assert sorted(m["Body"] for m in delivered) == sorted(e.model_dump_json() for e in big)
