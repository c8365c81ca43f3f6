"""A FAILED notification always has a copy to replay, and replaying it is one step.

- Its worker records FAILED, then copies the message to the DLQ: when the copy does not
  happen, the message comes back, and its next receive copies it (never deleted unreplayable).
- A redrive reopens the record, takes the failure off the tally and reopens the event in one
  transaction: a crash part way leaves nothing half done, and a repeat changes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from core.catalogue.models import EventStatus, NotificationStatus
from core.ledger.event_tally import EventTally
from core.ledger.outcome_records import Outcome
from core.ledger.wiring import Ledger
from core.operations.dead_letters import reopen
from core.platform.errors import PermanentError
from listeners.batch import BatchSettler
from listeners.messages import DeadLetter
from tests.conftest import Stack
from tests.factories import (
    QUEUE,
    ScriptedNotifier,
    claim,
    counted,
    ledger_of,
    notification,
    processing_event,
    queue_notification,
)
from tests.listeners.test_redriven import handler_for, receive
from tests.listeners.test_router import release


def test_a_failed_message_whose_copy_was_not_made_is_copied_when_it_comes_back(
    stack: Stack,
) -> None:
    ledger = ledger_of(stack)
    queue_notification(stack, ledger)
    failing = handler_for(ledger, ScriptedNotifier(PermanentError("provider said no")))
    try:
        batch = receive(stack, QUEUE)
        assert isinstance(failing(batch)[0], DeadLetter)
        release(stack, batch)  # the copy to the DLQ failed: nothing deleted, it comes back
        again = receive(stack, QUEUE)
        results = failing(again)
        BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(again, results)
    finally:
        failing.close()

    assert isinstance(results[0], DeadLetter)
    assert len(stack.receive_all(f"{QUEUE}-dlq")) == 1  # something to replay
    assert stack.receive_all(QUEUE) == []


class CrashingTally(EventTally):
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("redrive killed")


def failed_topic_notification(ledger: Ledger) -> Any:
    """A topic's notification that FAILED and settled its event FAILED, counted."""
    event = processing_event(ledger, topic="charts.z")
    message = notification(event)
    counted(ledger, [message])
    held = claim(ledger, message)
    assert held is not None
    outcome = Outcome(message, held.token, NotificationStatus.FAILED, error="no")
    ledger.outcomes.record_outcomes([outcome])
    ledger.settlement.add_and_settle(event.event_id)
    found = ledger.event_reads.get(event.event_id)
    assert found is not None and found[0].status is EventStatus.FAILED
    return message


def test_a_redrive_reopens_record_tally_and_event_together_or_not_at_all(stack: Stack) -> None:
    ledger = ledger_of(stack)
    message = failed_topic_notification(ledger)
    crashing = dataclasses.replace(
        ledger, tally=CrashingTally(stack.clients.dynamodb, stack.clients.names.table)
    )

    try:
        reopened = reopen(crashing, message)
    except RuntimeError:
        reopened = False
    found = ledger.event_reads.get(message.event_id)
    assert found is not None
    event, records = found
    if reopened:  # all of it happened
        assert records[0]["status"] == NotificationStatus.QUEUED
        assert event.status is EventStatus.PROCESSING and event.counts.failed == 0
    else:  # none of it
        assert records[0]["status"] == NotificationStatus.FAILED
        assert event.status is EventStatus.FAILED and event.counts.failed == 1
    assert not reopen(ledger, message)  # a repeat changes nothing
    again = ledger.event_reads.get(message.event_id)
    assert again is not None and again[0].counts.failed == 0
