"""The notification state machine against DynamoDB on the emulator."""

from __future__ import annotations

from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger.notification_store import NewNotification
from tests.conftest import Stack
from tests.factories import notification, processing_event, stores_of


def test_records_are_created_once_even_when_a_chunk_partly_exists(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events)
    first = [NewNotification(notification(event, f"u-{i}")) for i in range(3)]
    assert len(notifications.create(first)) == 3
    again = [NewNotification(notification(event, f"u-{i}")) for i in range(5)]
    created = notifications.create(again)
    assert [n.message.recipient_id for n in created] == ["u-3", "u-4"]
    statuses = notifications.statuses([n.message for n in again])
    assert set(statuses.values()) == {"QUEUED"} and len(statuses) == 5


def test_only_one_claim_wins_and_a_lapsed_lease_can_be_reclaimed(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    m = notification(processing_event(events))
    notifications.create([NewNotification(m)])
    first = notifications.claim(m, lease_seconds=60)
    assert first is not None and first.attempt == 1
    assert notifications.claim(m, lease_seconds=60) is None  # lease holds
    assert notifications.mark_retrying(m, "500", delay=1)
    second = notifications.claim(m, lease_seconds=-5)  # a lease that has already lapsed
    assert second is not None and second.attempt == 2
    third = notifications.claim(m, lease_seconds=60)
    assert third is not None and third.attempt == 3  # the dead worker's lease was taken over
    assert notifications.mark_sent(m, "twilio", "SM1")
    assert notifications.claim(m, lease_seconds=60) is None
    assert not notifications.mark_failed(m, "late")  # SENT is final
    assert notifications.status_of(m) == NotificationStatus.SENT


def test_event_settles_when_its_last_notification_does(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event_id = processing_event(events).event_id
    assert notifications.add_to_event(event_id, total=3, skipped=1) is None
    assert notifications.add_to_event(event_id, sent=1) is None
    assert notifications.add_to_event(event_id, fanout_complete=True) is None
    assert notifications.add_to_event(event_id, failed=1) == EventStatus.FAILED
    record, _ = events.get(event_id)  # type: ignore[misc]
    assert record.status == EventStatus.FAILED
    assert record.counts.model_dump() == {"total": 3, "sent": 1, "failed": 1, "skipped": 1}
    assert record.reason == "1 of 3 notifications failed"


def test_history_keeps_every_transition(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events)
    event_id = event.event_id
    m = notification(event)
    notifications.create([NewNotification(m)])
    notifications.claim(m, 60)
    notifications.mark_failed(m, "21211: invalid number")
    assert notifications.requeue(m, "redriven from the DLQ")
    _, items = events.get(event_id)  # type: ignore[misc]
    history = [(h["status"], h.get("detail")) for h in items[0]["history"]]
    assert history == [
        ("QUEUED", None),
        ("SENDING", None),
        ("FAILED", "21211: invalid number"),
        ("QUEUED", "redriven from the DLQ"),
    ]
    assert items[0]["recipient_masked"] == "+*******0123"
