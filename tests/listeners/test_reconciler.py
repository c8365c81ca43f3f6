"""The outbox: an event recorded but not published still reaches its queue, once."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from api.main import create_app
from core.catalogue.models import EventRecord, EventStatus, NotificationStatus
from core.ledger.outcome_records import RECORDED, Outcome
from core.ledger.wiring import Ledger
from listeners.reconciler import Reconciler, _republish_due
from localstack.provision import provision
from tests.conftest import AUTH, Stack
from tests.factories import claim, counted, ledger_of, notification, processing_event

FOLLOW = {"type": "follow", "user_id": "u-1", "data": {"actor": "Ana"}}


def stored(ledger: Ledger, event_id: str) -> EventRecord:
    found = ledger.event_reads.get(event_id)
    assert found is not None
    return found[0]


def test_event_whose_publish_failed_is_republished_once(stack: Stack) -> None:
    # A grace long against the few calls a pass makes, so that a loaded machine cannot
    # carry a check across the boundary it tests (the exact back-off is checked by
    # test_republishes_back_off_and_giving_up_waits_out_the_last, without a clock).
    grace = 1.5
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": grace})
    with TestClient(create_app(settings, stack.clients), headers=AUTH) as client:
        # The topic disappears after the API started: the publish fails after the record.
        stack.clients.sns.delete_topic(TopicArn=stack.clients.topic_arn)
        resp = client.post("/events", json=FOLLOW)
        assert resp.status_code == 202
        event_id = resp.json()["event_id"]
        assert client.get(f"/events/{event_id}").json()["status"] == "START"
    reconciler = Reconciler(settings, stack.clients)
    assert reconciler.run_pass().republished == 0  # still inside the grace period
    assert stack.receive_all("herald-test-events-normal") == []

    provision(settings, stack.clients)  # the topic comes back
    time.sleep(grace + 0.1)
    assert reconciler.run_pass().republished == 1
    republished_at = time.monotonic()
    assert reconciler.run_pass().republished == 0  # just republished: not again within the grace

    messages = stack.receive_all("herald-test-events-normal")
    assert [json.loads(m["Body"])["event_id"] for m in messages] == [event_id]

    # Published twice now: the next republish waits twice the grace, not once.
    time.sleep(max(0.0, grace + 0.1 - (time.monotonic() - republished_at)))
    assert reconciler.run_pass().republished == 0
    time.sleep(max(0.0, 2 * grace + 0.1 - (time.monotonic() - republished_at)))
    assert reconciler.run_pass().republished == 1


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
    assert reconciler.run_pass().republished == 0
    assert len(stack.receive_all("herald-test-events-normal")) == 1


def test_stuck_processing_event_is_settled_from_its_records(stack: Stack) -> None:
    """A counter update applied twice (its answer lost, then retried) leaves the tally over
    its total: the event is not settled from it; the reconciler recounts the records."""
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="chart-fans")
    sent, failed = notification(event, "u-1"), notification(event, "u-2")
    counted(ledger, [sent, failed])
    sent_claim, failed_claim = claim(ledger, sent, 30), claim(ledger, failed, 30)
    assert sent_claim and failed_claim
    assert ledger.outcomes.record_outcomes(
        [
            Outcome(sent, sent_claim.token, NotificationStatus.SENT, "twilio", "SM1"),
            Outcome(
                failed,
                failed_claim.token,
                NotificationStatus.FAILED,
                error="21211: invalid number",
            ),
        ]
    ) == [RECORDED, RECORDED]
    ledger.settlement.add_and_settle(event.event_id, sent=1)  # the sent one counted twice

    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    reconciler = Reconciler(settings, stack.clients)
    assert stored(ledger, event.event_id).status == EventStatus.PROCESSING
    assert reconciler.run_pass().settled == 1
    record = stored(ledger, event.event_id)
    assert record.status == EventStatus.FAILED
    assert record.counts.model_dump() == {"total": 2, "sent": 1, "failed": 1, "skipped": 0}
    assert reconciler.run_pass().settled == 0


def test_an_event_its_last_outcome_left_unsettled_is_settled_later(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="chart-fans")
    m = notification(event)
    counted(ledger, [m])
    held = claim(ledger, m, 30)
    assert held
    # Sent and counted, and the answer never came: the worker never settled the event.
    outcome = Outcome(m, held.token, NotificationStatus.SENT, "twilio", "SM1")
    assert ledger.outcomes.record_outcomes([outcome]) == [RECORDED]
    assert stored(ledger, event.event_id).status == EventStatus.PROCESSING
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    assert Reconciler(settings, stack.clients).run_pass().settled == 1
    record = stored(ledger, event.event_id)
    assert record.status == EventStatus.SUCCESS and record.counts.sent == 1


def test_events_with_notifications_in_flight_are_left_alone(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = processing_event(ledger, topic="chart-fans")
    counted(ledger, [notification(event)])
    settings = stack.settings.model_copy(update={"reconcile_grace_seconds": 0.0})
    assert Reconciler(settings, stack.clients).run_pass().settled == 0
    assert stored(ledger, event.event_id).status == EventStatus.PROCESSING


def test_passes_that_find_nothing_back_off_up_to_the_idle_maximum(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={
            "reconcile_interval_seconds": 10.0,
            "reconcile_grace_seconds": 60.0,
            "reconcile_idle_max_seconds": 300.0,
            "reconcile_stranded_seconds": 420.0,
        }
    )
    reconciler = Reconciler(settings, stack.clients)
    quiet = reconciler.run_pass()
    assert quiet.examined == 0
    pauses = [reconciler.pause(quiet, 0.0)]
    for _ in range(6):
        pauses.append(reconciler.pause(quiet, pauses[-1]))
    assert pauses == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    assert reconciler.pause(None, 300.0) == 10.0  # a failed pass: the interval
    # Never past the stranded period, whatever the idle maximum says.
    short = Reconciler(
        settings.model_copy(update={"reconcile_stranded_seconds": 100.0}), stack.clients
    )
    assert short.pause(quiet, 80.0) == 100.0

    ledger = ledger_of(stack)
    processing_event(ledger, topic="chart-fans")
    stale = Reconciler(settings.model_copy(update={"reconcile_grace_seconds": 0.0}), stack.clients)
    busy = stale.run_pass()
    assert busy.examined >= 1
    assert stale.pause(busy, 300.0) == 10.0  # a stale event: back to the interval
