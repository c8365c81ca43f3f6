"""A sharded tally's shard 0 shares the event item's partition key: outcomes count on the
other shards, and settling checks read shard 0 only when the event could be complete, yet
the last outcome always settles the event, also on a table whose earlier outcomes counted
on shard 0."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.catalogue.models import Event, EventStatus, NotificationMessage, NotificationStatus
from core.ledger.event_tally import tally_shard
from core.ledger.notification_records import NewNotification
from core.ledger.outcome_records import RECORDED, Outcome
from core.ledger.record_creation import CHUNK_MAX
from core.ledger.wiring import Ledger, build_ledger
from tests.conftest import Stack
from tests.factories import claim, ledger_of, notification, processing_event
from tests.support import aws_calls

SHARDS = 8


def messages(event: Event, count: int, start: int = 0) -> list[NotificationMessage]:
    """Email notifications of a topic event as the planner makes them: a sharded tally."""
    return [
        notification(
            event,
            f"u-{i:03d}",
            "email",
            addresses=[f"u{i}@example.com"],
            content={"subject": "s", "text": "t"},
        ).model_copy(update={"tally_shards": SHARDS})
        for i in range(start, start + count)
    ]


def create(ledger: Ledger, batch: Sequence[NotificationMessage]) -> None:
    created = ledger.creation.create_counted([NewNotification(m) for m in batch])
    assert len(created.created) == len(batch)


def sent(ledger: Ledger, batch: Sequence[NotificationMessage]) -> dict[str, EventStatus]:
    """Claim and record `batch` SENT as a worker does, then its settling check."""
    outcomes = []
    for message in batch:
        held = claim(ledger, message)
        assert held is not None
        outcomes.append(Outcome(message, held.token, NotificationStatus.SENT, provider="test"))
    assert ledger.outcomes.record_outcomes(outcomes) == [RECORDED] * len(batch)
    return ledger.settlement.settle_events({batch[0].event_id: SHARDS})


class ShardReads:
    """A ledger on a client of its own whose BatchGetItem keys are noted as sent."""

    def __init__(self, stack: Stack) -> None:
        client = AwsClients(stack.settings).dynamodb
        self.keys: list[tuple[str, str]] = []
        self._watching = aws_calls(client, self._note)
        self._watching.__enter__()  # for the client's whole life (the test's)
        self.ledger = build_ledger(client, stack.clients.names.table)

    def _note(self, operation: str, params: dict[str, Any]) -> None:
        if operation != "BatchGetItem":
            return
        for spec in params["RequestItems"].values():
            self.keys += [(k["PK"]["S"], k["SK"]["S"]) for k in spec["Keys"]]

    def first_shard_reads(self, event_id: str) -> int:
        first = dynamo.tally_key(event_id, 0)
        return self.keys.count((first["PK"]["S"], first["SK"]["S"]))


def status_of(ledger: Ledger, event_id: str) -> EventStatus:
    found = ledger.event_reads.get(event_id)
    assert found is not None
    return found[0].status


def test_outcomes_never_count_on_shard_zero_and_spread_over_the_others() -> None:
    event = Event.model_validate(
        {
            "event_id": "e-1",
            "type": "trend.top_artist_changed",
            "category": "trend",
            "priority": "normal",
            "topic": "charts",
            "data": {},
            "created_at": "2026-12-07T00:00:00+00:00",
        }
    )
    shards = {tally_shard(m) for m in messages(event, 400)}
    assert shards == set(range(1, SHARDS))
    two = messages(event, 20)[0].model_copy(update={"tally_shards": 2})
    assert tally_shard(two) == 1
    assert tally_shard(two.model_copy(update={"tally_shards": 1})) == 0


def test_checks_read_shard_zero_only_when_the_event_could_be_complete(stack: Stack) -> None:
    reads = ShardReads(stack)
    ledger = reads.ledger
    event = processing_event(ledger, topic="charts")
    batch = messages(event, 30)
    create(ledger, batch)
    assert ledger.settlement.add_and_settle(event.event_id, fanout_complete=True) is None
    before = reads.first_shard_reads(event.event_id)

    for start in range(0, 25, 5):
        assert sent(ledger, batch[start : start + 5]) == {}
    # The first check read shard 0; the next four knew from it that 30 were unsettled.
    assert reads.first_shard_reads(event.event_id) - before == 1
    assert status_of(ledger_of(stack), event.event_id) is EventStatus.PROCESSING

    assert sent(ledger, batch[25:]) == {event.event_id: EventStatus.SUCCESS}
    assert reads.first_shard_reads(event.event_id) - before == 2
    found = ledger_of(stack).event_reads.get(event.event_id)
    assert found is not None
    assert (found[0].counts.total, found[0].counts.sent) == (30, 30)


def test_the_last_outcome_settles_whatever_each_worker_last_read(stack: Stack) -> None:
    """Two workers, each with its own copy of shard 0 taken while the fan-out was still
    creating records (and some records failed at creation): whoever counts the last
    outcome settles the event, and nobody before."""
    ledger = ledger_of(stack)
    one, two = ledger_of(stack), ledger_of(stack)
    event = processing_event(ledger, topic="charts")
    first = messages(event, 12)
    create(ledger, first)
    assert sent(one, first[:3]) == {} and sent(two, first[3:6]) == {}  # copies: 12 unsettled

    later = messages(event, 18, start=12)
    failed = later[:4]  # created FAILED: settled at creation, counted on shard 0
    ledger.creation.create_counted(
        [NewNotification(m, NotificationStatus.FAILED, "no address") for m in failed]
    )
    create(ledger, later[4:])
    assert ledger.settlement.add_and_settle(event.event_id, fanout_complete=True) is None

    pending = first[6:] + later[4:]  # 20 left to send
    workers = [one, two]
    for i in range(0, len(pending) - 4, 4):
        assert sent(workers[(i // 4) % 2], pending[i : i + 4]) == {}
        assert status_of(ledger, event.event_id) is EventStatus.PROCESSING
    assert sent(one, pending[-4:]) == {event.event_id: EventStatus.FAILED}
    found = ledger.event_reads.get(event.event_id)
    assert found is not None
    assert found[0].counts.model_dump() == {"total": 30, "sent": 26, "failed": 4, "skipped": 0}


@pytest.mark.parametrize("last_on_first", [False, True])
def test_a_table_whose_earlier_outcomes_counted_on_shard_zero_settles_exactly(
    stack: Stack, last_on_first: bool
) -> None:
    """An event in flight when outcomes moved off shard 0: some of its outcomes counted
    there by a worker of the earlier version (whose check read every shard), the rest on
    the other shards. Readers sum every shard, so the counts are exact and the event
    settles once, whichever layout counts last."""
    ledger, worker = ledger_of(stack), ledger_of(stack)
    event = processing_event(ledger, topic="charts")
    batch = messages(event, 20)
    create(ledger, batch)
    assert ledger.settlement.add_and_settle(event.event_id, fanout_complete=True) is None
    old, new = (batch[:10], batch[10:]) if not last_on_first else (batch[10:], batch[:10])

    def counted_on_shard_zero(part: Sequence[NotificationMessage]) -> dict[str, EventStatus]:
        items = []
        for message in part:
            held = claim(ledger, message)
            assert held is not None
            items.append(
                {
                    "Update": ledger.records.transition(
                        message, owner=held.token, **ledger.records.sent("test", None)
                    )
                }
            )
        items.append({"Update": ledger.tally.update(event.event_id, {"sent": len(part)}, shard=0)})
        ledger.records.write(items)
        final = ledger.settlement.settle(ledger.tally.tally_of(event.event_id))
        return {event.event_id: final} if final else {}

    if last_on_first:
        assert sent(worker, new) == {}
        assert counted_on_shard_zero(old) == {event.event_id: EventStatus.SUCCESS}
    else:
        assert counted_on_shard_zero(old) == {}
        assert sent(worker, new) == {event.event_id: EventStatus.SUCCESS}
    first = dynamo.from_item(
        stack.clients.dynamodb.get_item(
            TableName=stack.clients.names.table, Key=dynamo.tally_key(event.event_id, 0)
        )["Item"]
    )
    assert first["sent"] == 10
    found = ledger.event_reads.get(event.event_id)
    assert found is not None
    assert (found[0].counts.total, found[0].counts.sent) == (20, 20)
    assert ledger.tally.tally_of(event.event_id)["sent"] == 20


def tally_items(stack: Stack, event_id: str) -> dict[int, dict[str, Any]]:
    """The event's tally shards as stored, by shard."""
    found = {}
    for shard in range(SHARDS):
        item = stack.clients.dynamodb.get_item(
            TableName=stack.clients.names.table,
            Key=dynamo.tally_key(event_id, shard),
            ConsistentRead=True,
        ).get("Item")
        if item:
            found[shard] = dynamo.from_item(item)
    return found


def test_a_page_counts_its_first_chunk_on_shard_zero_and_the_rest_on_outcome_shards(
    stack: Stack,
) -> None:
    """The event's own key takes one count a page, not one a chunk; readers sum every
    shard, the records created SCHEDULED too."""
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="charts")
    page = messages(event, 250)
    waiting = [
        NewNotification(m, NotificationStatus.SCHEDULED, deliver_at="2026-12-08T09:00:00Z")
        for m in page[200:]
    ]
    created = ledger.creation.create_counted([NewNotification(m) for m in page[:200]] + waiting)
    assert len(created.created) == 250
    items = tally_items(stack, event.event_id)
    assert items[0]["total"] == CHUNK_MAX  # the page's first chunk
    assert items[0]["tally_shards"] == SHARDS
    assert sum(int(i.get("total", 0)) for s, i in items.items() if s) == 250 - CHUNK_MAX
    tally = ledger.tally.tally_of(event.event_id)
    assert (tally["total"], tally["scheduled"]) == (250, 50)


def test_the_last_outcome_settles_an_event_whose_pages_counted_on_every_shard(
    stack: Stack,
) -> None:
    """Two workers took their copy of shard 0 after the first page; a second page then
    counted on shard 0 and on outcome shards. Whoever counts the last outcome settles the
    event, nobody before."""
    ledger = ledger_of(stack)
    one, two = ledger_of(stack), ledger_of(stack)
    event = processing_event(ledger, topic="charts")
    first = messages(event, 120)
    create(ledger, first)
    assert sent(one, first[:10]) == {} and sent(two, first[10:20]) == {}  # their copies
    second = messages(event, 130, start=120)
    create(ledger, second)
    assert ledger.settlement.add_and_settle(event.event_id, fanout_complete=True) is None

    pending = first[20:] + second
    workers = [one, two]
    for i in range(0, len(pending) - 10, 10):
        assert sent(workers[(i // 10) % 2], pending[i : i + 10]) == {}
    assert status_of(ledger, event.event_id) is EventStatus.PROCESSING
    assert sent(two, pending[-10:]) == {event.event_id: EventStatus.SUCCESS}
    found = ledger.event_reads.get(event.event_id)
    assert found is not None
    assert (found[0].counts.total, found[0].counts.sent) == (250, 250)
