"""No request reads without bound: an event's notifications come a page at a time, and a
listing whose filter matches little returns a short page with a cursor instead of reading
a whole index partition."""

from __future__ import annotations

from fastapi.testclient import TestClient

from core.catalogue.models import EventStatus
from core.ledger.notification_records import NewNotification
from tests.conftest import Stack
from tests.factories import ledger_of, notification, processing_event


def test_an_events_notifications_come_a_page_at_a_time(client: TestClient, stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="chart-fans")
    made = [notification(event, recipient=f"u-{i:03d}") for i in range(250)]
    ledger.creation.create_counted([NewNotification(m) for m in made])

    first = client.get(f"/events/{event.event_id}").json()
    assert first["status"] == EventStatus.PROCESSING
    assert len(first["notifications"]) == 100
    seen = [n["notification_id"] for n in first["notifications"]]
    cursor = first["notifications_cursor"]
    pages = 1
    while cursor:
        page = client.get(
            f"/events/{event.event_id}/notifications", params={"cursor": cursor}
        ).json()
        seen += [n["notification_id"] for n in page["items"]]
        cursor = page["next_cursor"]
        pages += 1
    assert sorted(seen) == sorted(m.notification_id for m in made)
    assert pages == 3


def test_a_cursor_of_another_event_is_refused(client: TestClient, stack: Stack) -> None:
    ledger = ledger_of(stack)
    one = processing_event(ledger, topic="chart-fans")
    other = processing_event(ledger, topic="chart-fans")
    ledger.creation.create_counted(
        [NewNotification(notification(one, recipient=f"u-{i}")) for i in range(3)]
    )
    cursor = client.get(f"/events/{one.event_id}/notifications", params={"limit": 1}).json()[
        "next_cursor"
    ]
    assert cursor
    resp = client.get(f"/events/{other.event_id}/notifications", params={"cursor": cursor})
    assert resp.status_code == 422


def test_a_listing_that_matches_little_answers_a_short_page_with_a_cursor(
    client: TestClient, stack: Stack
) -> None:
    ledger = ledger_of(stack)
    for _ in range(80):
        processing_event(ledger, user_id="u-busy")
    page = client.get(
        "/events", params={"user_id": "u-busy", "status": "SUCCESS", "limit": 10}
    ).json()
    # Three reads of ten index entries at most: nothing matched yet, more may follow.
    assert page["items"] == []
    assert page["next_cursor"] is not None
    rounds = 1
    cursor = page["next_cursor"]
    while cursor:
        page = client.get(
            "/events",
            params={"user_id": "u-busy", "status": "SUCCESS", "limit": 10, "cursor": cursor},
        ).json()
        assert page["items"] == []
        cursor = page["next_cursor"]
        rounds += 1
    assert rounds >= 3  # 80 entries at 30 a request
