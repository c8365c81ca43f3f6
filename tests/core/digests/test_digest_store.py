"""Digest items against the emulator: absorbing with conditional writes, windows and
generations, the event's DIGESTED status, closing once."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.catalogue.event_types import EVENT_TYPES, Digest
from core.catalogue.models import Event, EventStatus, iso
from core.digests.items import ITEM_DATA_MAX_BYTES, DigestHead, digest_event, digest_pk
from core.digests.store import DigestStore
from core.ledger.notification_records import EventClosed
from tests.conftest import Stack
from tests.factories import ledger_of, record

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEN_MINUTES = Digest(window="10m", key="post")


def like(
    stack: Stack,
    actor: str,
    at: datetime = T0,
    *,
    post: str = "p-7",
    user: str = "u-1",
    data: dict[str, Any] | None = None,
) -> Event:
    spec = EVENT_TYPES["like"]
    event = Event(
        event_id=str(uuid.uuid4()),
        type="like",
        category=spec.category,
        priority=spec.priority,
        user_id=user,
        data=data or {"actor": actor, "post": post},
        created_at=iso(at),
    )
    record(ledger_of(stack), event)
    return event


class Scheduled:
    """What the store asked to schedule, in order."""

    def __init__(self) -> None:
        self.heads: list[DigestHead] = []
        self.lock = threading.Lock()

    def __call__(self, head: DigestHead) -> None:
        with self.lock:
            self.heads.append(head)


def store(stack: Stack) -> DigestStore:
    return DigestStore(stack.clients.dynamodb, stack.clients.names.table)


def stored_event(stack: Stack, event_id: str) -> Any:
    found = ledger_of(stack).event_reads.get(event_id)
    assert found is not None
    return found[0]


def test_events_of_a_window_make_one_digest_and_end_digested(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    events = [like(stack, a, T0 + timedelta(minutes=i)) for i, a in enumerate(["Bo", "Ann", "Bo"])]
    results = [digests.absorb(e, TEN_MINUTES, scheduled) for e in events]

    assert [r.outcome for r in results] == ["absorbed"] * 3
    assert [r.opened for r in results] == [True, False, False]
    head = digests.newest(digest_pk(events[0], TEN_MINUTES))
    assert head is not None
    assert (head.count, head.actors, head.generation) == (3, ("Bo", "Ann"), 0)
    assert head.first_at == events[0].created_at and head.last_at == events[2].created_at
    assert head.closes_at == iso(T0 + timedelta(minutes=10))
    assert [h.ref for h in scheduled.heads] == [head.ref]
    for event in events:
        stored = stored_event(stack, event.event_id)
        assert stored.status is EventStatus.DIGESTED
        assert stored.digest_event_id == head.digest_event_id


def test_a_redelivered_event_joins_once(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    first, second = like(stack, "Bo"), like(stack, "Ann", T0 + timedelta(seconds=5))
    digests.absorb(first, TEN_MINUTES, scheduled)
    digests.absorb(second, TEN_MINUTES, scheduled)
    again = digests.absorb(second, TEN_MINUTES, scheduled)

    assert again.outcome == "already"
    head = digests.newest(digest_pk(first, TEN_MINUTES))
    assert head is not None and head.count == 2
    assert again.digest_event_id == head.digest_event_id


def test_keys_and_recipients_digest_apart(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    events = [
        like(stack, "Bo", post="p-1"),
        like(stack, "Bo", post="p-2"),
        like(stack, "Bo", user="u-2"),
    ]
    for event in events:
        digests.absorb(event, TEN_MINUTES, scheduled)
    assert len({digest_pk(e, TEN_MINUTES) for e in events}) == 3
    assert len(scheduled.heads) == 3


def test_two_absorbers_racing_open_one_digest(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    events = [like(stack, f"actor-{i}", T0 + timedelta(seconds=i)) for i in range(6)]
    barrier = threading.Barrier(len(events))
    errors: list[BaseException] = []

    def absorb(event: Event) -> None:
        barrier.wait()
        try:
            digests.absorb(event, TEN_MINUTES, scheduled)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=absorb, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    head = digests.newest(digest_pk(events[0], TEN_MINUTES))
    assert head is not None and (head.generation, head.count) == (0, 6)
    assert sorted(head.actors) == sorted(e.data["actor"] for e in events)
    assert {h.ref for h in scheduled.heads} == {head.ref}


def test_a_closed_or_past_window_opens_the_next_generation(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    first = like(stack, "Bo")
    digests.absorb(first, TEN_MINUTES, scheduled)
    late = like(stack, "Ann", T0 + timedelta(minutes=10))  # at the window's close: outside it
    assert digests.absorb(late, TEN_MINUTES, scheduled).opened
    closed = digests.close(scheduled.heads[1].ref, "window")
    assert closed is not None and closed.status == "CLOSED"
    after = like(stack, "Cy", T0 + timedelta(minutes=11))
    result = digests.absorb(after, TEN_MINUTES, scheduled)
    assert result.opened and result.head is not None and result.head.generation == 2
    assert [h.generation for h in scheduled.heads] == [0, 1, 2]


def test_a_full_digest_says_so_and_the_next_event_opens_another(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    spec = Digest(window="1h", max_items=2)
    results = [digests.absorb(like(stack, a), spec, scheduled) for a in ("Bo", "Ann", "Cy")]
    assert [r.head.full for r in results if r.head] == [False, True, False]
    assert [r.head.generation for r in results if r.head] == [0, 0, 1]


def test_leading_sends_the_opener_and_digests_the_rest(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    spec = Digest(window="10m", leading=True)
    opener, rest = like(stack, "Bo"), like(stack, "Ann", T0 + timedelta(seconds=1))
    assert digests.absorb(opener, spec, scheduled).outcome == "lead"
    assert digests.absorb(opener, spec, scheduled).outcome == "lead"  # a redelivery: still
    assert digests.absorb(rest, spec, scheduled).outcome == "absorbed"
    assert stored_event(stack, opener.event_id).status is EventStatus.START
    head = digests.newest(digest_pk(opener, spec))
    assert head is not None and (head.count, head.actors) == (1, ("Ann",))
    closed = digests.close(head.ref, "window")
    assert closed is not None and closed.count == 1


def test_a_settled_event_is_not_digested(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    event = like(stack, "Bo")
    status = ledger_of(stack).event_status
    assert status.fail(event.event_id, "given up")
    with pytest.raises(EventClosed):
        digests.absorb(event, TEN_MINUTES, scheduled)


def test_closing_twice_returns_the_digest_as_it_closed(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    digests.absorb(like(stack, "Bo"), TEN_MINUTES, scheduled)
    ref = scheduled.heads[0].ref
    results: list[DigestHead | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(digests.close(ref, "window")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and all(r is not None for r in results)
    assert {(r.status, r.count, r.closed_at) for r in results if r} == {
        ("CLOSED", 1, results[0].closed_at if results[0] else None)
    }
    # an absorb after the close opens the next generation instead of joining a sent digest
    later = digests.absorb(like(stack, "Ann", T0 + timedelta(seconds=1)), TEN_MINUTES, scheduled)
    assert later.head is not None and later.head.generation == 1
    assert digests.close("DIGEST#nothing/0", "window") is None


def test_a_digest_keeps_a_bounded_item(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    big = {"actor": "Bo", "post": "p-7", "blob": "x" * 100_000, "nested": {"a": [1] * 5000}}
    for i in range(15):
        data = {**big, "actor": f"actor-{i}"}
        digests.absorb(
            like(stack, "", T0 + timedelta(seconds=i), data=data), TEN_MINUTES, scheduled
        )
    head = digests.newest(scheduled.heads[0].pk)
    assert head is not None and head.count == 15
    assert len(head.actors) == 10 and len(head.items) == 10
    assert all(len(str(item)) < ITEM_DATA_MAX_BYTES for item in head.items)
    assert "nested" not in head.items[0] and head.items[0]["actor"] == "actor-0"
    event = digest_event(head, T0)
    assert event.data["count"] == 15 and event.data["others"] == 14
    assert event.digest_id == head.ref and event.user_id == "u-1"


def test_a_delayed_event_opens_its_window_when_it_comes_due(stack: Stack) -> None:
    digests, scheduled = store(stack), Scheduled()
    spec = EVENT_TYPES["like"]
    due = T0 + timedelta(hours=3)
    event = Event(
        event_id=str(uuid.uuid4()),
        type="like",
        category=spec.category,
        priority=spec.priority,
        user_id="u-1",
        data={"actor": "Bo", "post": "p-7"},
        created_at=iso(T0),
        send_at=iso(due),
    )
    record(ledger_of(stack), event)
    result = digests.absorb(event, TEN_MINUTES, scheduled)
    assert result.head is not None
    assert result.head.opened_at == iso(due)
    assert result.head.closes_at == iso(due + timedelta(minutes=10))
