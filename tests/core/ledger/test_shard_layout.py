"""Shard counts follow the declared rate, and readers cover the old and the new layout while
a live table's layout changes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from core.aws import dynamo
from core.catalogue.event_types import Category, Priority
from core.catalogue.models import Event, EventStatus, iso, utcnow
from core.ledger import event_index
from core.ledger.shard_layout import DEFAULT_LAYOUT, FLOORS, UNITS, ShardLayout
from core.ledger.wiring import Ledger, build_ledger
from core.platform.settings import Settings
from tests.conftest import Stack
from tests.factories import record


def test_the_default_rate_keeps_the_counts_every_table_has() -> None:
    layout = ShardLayout.of(Settings())
    assert layout == DEFAULT_LAYOUT == ShardLayout.for_rate(1000)
    assert (layout.listing, layout.status, layout.records, layout.tally) == (8, 16, 32, 8)
    assert (event_index.LISTING_SHARDS, event_index.STATUS_SHARDS) == (8, 16)


@pytest.mark.parametrize("rate", [10_000, 25_000, 100_000])
def test_shards_keep_every_key_at_30_percent_of_its_limit(rate: int) -> None:
    layout = ShardLayout.for_rate(rate)
    for family, count in (
        ("listing", layout.listing),
        ("status", layout.status),
        ("records", layout.records),
        ("tally", layout.tally),
    ):
        # A tally's shard 0 takes no outcomes: its load spreads over the others.
        taking = count - 1 if family == "tally" else count
        per_shard = rate * UNITS[family] / taking
        assert per_shard <= 300, family
        assert count >= FLOORS[family]
        # The fewest that do: one shard less would pass 30% (or the floor holds it).
        assert count == FLOORS[family] or rate * UNITS[family] / (taking - 1) > 300, family
    assert ShardLayout.for_rate(10_000).status == 150  # 10,000 x 3 x 1.5 / 300
    assert ShardLayout.for_rate(10_000).tally == 19  # 1 + 10,000 x 0.3 x 1.75 / 300


def test_readers_cover_the_larger_of_the_old_and_new_layout() -> None:
    grown = ShardLayout.for_rate(10_000, previous=1000)
    assert grown.status == grown.status_read == 150
    shrunk = ShardLayout.for_rate(1000, previous=10_000)
    assert shrunk.status == 16 and shrunk.status_read == 150
    assert shrunk.listing == 8 and shrunk.listing_read == 50


def event(n: int, minutes_ago: float) -> Event:
    return Event(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"layout-{n}")),
        type="follow",
        category=Category.activity,
        priority=Priority.normal,
        user_id="u-layout",
        created_at=iso(utcnow() - timedelta(minutes=minutes_ago)),
        tenant="default",
    )


def ledger_with(stack: Stack, layout: ShardLayout) -> Ledger:
    return build_ledger(stack.clients.dynamodb, stack.clients.names.table, layout=layout)


def status_shard(stack: Stack, event_id: str) -> int:
    item = stack.clients.dynamodb.get_item(
        TableName=stack.clients.names.table, Key=dynamo.event_key(event_id), ConsistentRead=True
    )["Item"]
    return int(item[event_index.STATUS_ATTR]["S"].split("#")[1])


def test_a_table_whose_layout_shrank_is_listed_and_walked_whole(stack: Stack) -> None:
    """Events written under the layout of 10,000/s, then more under 1,000/s's: a reader that
    names the old rate as the previous one lists and walks all of them; one that does not
    misses those on the shards the new layout has no more."""
    big, small = ShardLayout.for_rate(10_000), ShardLayout.for_rate(1000)
    old = [event(n, 30 - n / 10) for n in range(40)]
    new = [event(100 + n, 20 - n / 10) for n in range(10)]
    for e in old:
        record(ledger_with(stack, big), e)
    for e in new:
        record(ledger_with(stack, small), e)
    beyond = [e.event_id for e in old if status_shard(stack, e.event_id) >= small.status]
    assert beyond, "some old events sit on shards past the new layout's"

    covering = ledger_with(stack, ShardLayout.for_rate(1000, previous=10_000))
    wanted = [e.event_id for e in sorted(old + new, key=lambda e: e.created_at, reverse=True)]
    listed: list[str] = []
    cursor = None
    for _ in range(50):
        page = covering.event_reads.list_events(limit=7, cursor=cursor, status="START")
        listed += [e["event_id"] for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert listed == wanted

    cutoff = iso(utcnow() - timedelta(minutes=1))
    walked, mark = covering.stale_events.stale(EventStatus.START, cutoff, None, 100)
    while mark is not None:
        more, mark = covering.stale_events.stale(EventStatus.START, cutoff, mark, 100)
        walked += more
    assert {e["event_id"] for e in walked} == set(wanted)

    narrow = ledger_with(stack, small).event_reads.list_events(limit=100, status="START")
    assert not set(beyond) & {e["event_id"] for e in narrow.items}


def test_a_status_change_moves_an_event_to_its_shard_in_the_new_layout(stack: Stack) -> None:
    big, small = ShardLayout.for_rate(10_000), ShardLayout.for_rate(1000)
    moved = next(
        e
        for e in (event(200 + n, 1) for n in range(50))
        if event_index.status_shard_of(e.event_id, big.status) >= small.status
    )
    record(ledger_with(stack, big), moved)
    assert status_shard(stack, moved.event_id) >= small.status
    changes = ledger_with(stack, small).event_status
    assert changes.transition(moved.event_id, EventStatus.START, EventStatus.PROCESSING)
    assert status_shard(stack, moved.event_id) == event_index.status_shard_of(
        moved.event_id, small.status
    )
