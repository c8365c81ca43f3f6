"""The outbox: an event recorded but not published still reaches its queue, once."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from api.main import create_app
from core.catalogue.models import EventStatus
from core.ledger.notification_store import NewNotification
from listeners.reconciler import Reconciler, _republish_due
from localstack.provision import provision
from tests.conftest import AUTH, Stack
from tests.factories import notification, processing_event, stores_of

FOLLOW = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}


def test_event_whose_publish_failed_is_republished_once(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.5})
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        # The topic disappears after the API started: the publish fails after the record.
        stack.clients.sns.delete_topic(TopicArn=stack.clients.topic_arn)
        resp = client.post("/events", json=FOLLOW)
        assert resp.status_code == 202
        event_id = resp.json()["event_id"]
        assert client.get(f"/events/{event_id}").json()["status"] == "START"
    reconciler = Reconciler(settings, stack.clients)
    assert reconciler.run_once() == 0  # still inside the grace period
    assert stack.receive_all("herald-test-events-normal") == []

    provision(settings, stack.clients)  # the topic comes back
    time.sleep(0.6)
    assert reconciler.run_once() == 1
    assert reconciler.run_once() == 0  # just republished: not again within the grace

    messages = stack.receive_all("herald-test-events-normal")
    assert [json.loads(m["Body"])["event_id"] for m in messages] == [event_id]

    # Published twice now: the next republish waits twice the grace, not once.
    time.sleep(0.6)
    assert reconciler.run_once() == 0
    time.sleep(0.5)
    assert reconciler.run_once() == 1


def test_republishes_back_off_and_giving_up_waits_out_the_last() -> None:
    now = 1_000_000.0
    at = datetime.fromtimestamp(now - 25, UTC).isoformat()
    stale = {"last_published_at": at}
    assert _republish_due(stale, 1, 10.0, now)  # first: after the grace
    assert _republish_due(stale, 2, 10.0, now)  # second: after twice the grace (20 s)
    assert not _republish_due(stale, 3, 10.0, now)  # third: after 40 s
    assert _republish_due(stale, 3, 10.0, now + 15)
    assert _republish_due({"last_published_at": "not a time"}, 3, 10.0, now)


def test_reconciler_leaves_events_that_moved_on(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        event_id = client.post("/events", json=FOLLOW).json()["event_id"]
    reconciler = Reconciler(settings, stack.clients)
    from core.catalogue.models import EventStatus

    assert reconciler.events.transition(event_id, EventStatus.START, EventStatus.PROCESSING)
    assert reconciler.run_once() == 0
    assert len(stack.receive_all("herald-test-events-normal")) == 1


def test_stuck_processing_event_is_settled_from_its_records(stack: Stack) -> None:
    """A counter update applied twice (its answer lost, then retried) leaves the tally over
    its total: the event is not settled from it; the reconciler recounts the records."""
    events, notifications = stores_of(stack)
    event = processing_event(events)
    sent, failed = notification(event, "u-1"), notification(event, "u-2")
    notifications.create([NewNotification(sent), NewNotification(failed)])
    notifications.add_to_event(event.event_id, total=2, fanout_complete=True)
    for m in (sent, failed):
        assert notifications.claim(m, lease_seconds=30)
    notifications.mark_sent(sent, "twilio", "SM1")
    notifications.mark_failed(failed, "21211: invalid number")
    notifications.add_to_event(event.event_id, sent=2, failed=1)  # the sent one counted twice

    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    reconciler = Reconciler(settings, stack.clients)
    assert events.get(event.event_id)[0].status == EventStatus.PROCESSING  # type: ignore[index]
    assert reconciler.settle_stuck() == 1
    record = events.get(event.event_id)[0]  # type: ignore[index]
    assert record.status == EventStatus.FAILED
    assert record.counts.model_dump() == {"total": 2, "sent": 1, "failed": 1, "skipped": 0}
    assert reconciler.settle_stuck() == 0


def test_lost_last_count_is_settled_from_the_records(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events)
    m = notification(event)
    notifications.create([NewNotification(m)])
    notifications.add_to_event(event.event_id, total=1, fanout_complete=True)
    assert notifications.claim(m, lease_seconds=30)
    notifications.mark_sent(m, "twilio", "SM1")  # ...and the count's answer never came
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    assert Reconciler(settings, stack.clients).settle_stuck() == 1
    record = events.get(event.event_id)[0]  # type: ignore[index]
    assert record.status == EventStatus.SUCCESS and record.counts.sent == 1


def test_events_with_notifications_in_flight_are_left_alone(stack: Stack) -> None:
    events, notifications = stores_of(stack)
    event = processing_event(events)
    notifications.create([NewNotification(notification(event))])
    notifications.add_to_event(event.event_id, total=1, fanout_complete=True)
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    assert Reconciler(settings, stack.clients).settle_stuck() == 0
    assert events.get(event.event_id)[0].status == EventStatus.PROCESSING  # type: ignore[index]
