"""The notification state machine against DynamoDB on the emulator: claims and leases,
outcomes, requeues and the history they leave."""

from __future__ import annotations

from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger.outcome_records import ALREADY, LOST, RECORDED, Outcome
from tests.conftest import Stack
from tests.factories import claim, ledger_of, notification, processing_event, recorded_event, routed


def test_only_one_claim_wins_and_a_lapsed_lease_can_be_reclaimed(stack: Stack) -> None:
    ledger = ledger_of(stack)
    (m,) = routed(ledger, [notification(recorded_event(ledger))])
    first = claim(ledger, m, lease_seconds=60)
    assert first is not None and first.attempt == 1
    assert claim(ledger, m, lease_seconds=60) is None  # lease holds
    assert ledger.transitions.mark_retrying(m, "500", delay=1, token=first.token)
    second = claim(ledger, m, lease_seconds=-5)  # a lease that has already lapsed
    assert second is not None and second.attempt == 2
    third = claim(ledger, m, lease_seconds=60)
    assert third is not None and third.attempt == 3  # the dead worker's lease was taken over
    sent = Outcome(m, third.token, NotificationStatus.SENT, "twilio", "SM1")
    assert ledger.outcomes.record_outcomes([sent]) == [RECORDED]
    assert ledger.outcomes.record_outcomes([sent]) == [ALREADY]  # a retry after a lost answer
    assert claim(ledger, m, lease_seconds=60) is None
    late = Outcome(m, second.token, NotificationStatus.FAILED, error="late")
    assert ledger.outcomes.record_outcomes([late]) == [LOST]  # SENT is final
    assert ledger.transitions.status_of(m) == NotificationStatus.SENT


def test_event_settles_when_its_last_notification_does(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event_id = processing_event(ledger).event_id
    settle = ledger.settlement.add_and_settle
    assert settle(event_id, total=3, skipped=1) is None
    assert settle(event_id, sent=1) is None
    assert settle(event_id, fanout_complete=True) is None
    assert settle(event_id, failed=1) == EventStatus.FAILED
    record, _ = ledger.event_reads.get(event_id)  # type: ignore[misc]
    assert record.status == EventStatus.FAILED
    assert record.counts.model_dump() == {"total": 3, "sent": 1, "failed": 1, "skipped": 1}
    assert record.reason == "1 of 3 notifications failed"


def test_history_keeps_every_transition(stack: Stack) -> None:
    ledger = ledger_of(stack)
    event = recorded_event(ledger)
    (m,) = routed(ledger, [notification(event)])
    held = claim(ledger, m)
    assert held is not None
    failed = Outcome(m, held.token, NotificationStatus.FAILED, error="21211: invalid number")
    assert ledger.outcomes.record_outcomes([failed]) == [RECORDED]
    assert ledger.transitions.requeue(m, "redriven from the DLQ")
    _, items = ledger.event_reads.get(event.event_id)  # type: ignore[misc]
    history = [(h["status"], h.get("detail")) for h in items[0]["history"]]
    assert history == [
        ("QUEUED", None),
        ("SENDING", None),
        ("FAILED", "21211: invalid number"),
        ("QUEUED", "redriven from the DLQ"),
    ]
    assert items[0]["recipient_masked"] == "+*******0123"
