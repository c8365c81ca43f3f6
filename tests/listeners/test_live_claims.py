"""The reconciler gives up only on what is still stranded when it writes: a claim taken
between its judgement and its write keeps its record, and the worker's SENT stands."""

from __future__ import annotations

from typing import Any

from core.catalogue.models import EventStatus, NotificationMessage, NotificationStatus
from core.ledger.outcome_records import RECORDED, Outcome
from tests.conftest import Stack
from tests.factories import claim, ledger_of
from tests.listeners.test_repairs import EMAIL, reconciler
from tests.listeners.test_router import (
    COMMENT,
    add_user,
    drain,
    post_event,
    route_all,
    router,
    stored,
)


def test_a_claim_taken_while_the_reconciler_gives_up_is_not_failed(stack: Stack) -> None:
    ledger = ledger_of(stack)
    add_user(stack, "u-1", EMAIL, email="u1@example.com")
    event = post_event(stack, "comment", COMMENT, user_id="u-1")
    route_all(stack, router(stack))
    (body,) = drain(stack, "email-normal")  # the message is lost...
    body.pop("attributes")
    message = NotificationMessage.model_validate(body)
    fix = reconciler(stack, reconcile_max_repairs=1)
    assert fix.run_pass().repaired == 1
    drain(stack, "events-normal")  # ...and so is the repair
    fix._watermarks.clear()

    taken: list[Any] = []
    give_up = fix.transitions.fail_stranded

    def worker_claims_first(*args: Any, **kwargs: Any) -> bool:
        # A worker takes the (redelivered) message after the pass judged the record
        # stranded and before it writes: a fresh lease.
        taken.append(claim(ledger, message))
        return give_up(*args, **kwargs)

    fix.transitions.fail_stranded = worker_claims_first  # type: ignore[method-assign]
    report = fix.run_pass()

    assert report.stranded_failed == 0
    held = taken[0]
    assert held is not None
    assert stored(stack, event.event_id)[1]["email"]["status"] == NotificationStatus.SENDING
    sent = Outcome(message, held.token, NotificationStatus.SENT, "sendgrid", "m-1")
    assert ledger.outcomes.record_outcomes([sent]) == [RECORDED]  # the worker's SENT stands
    record, notifications = stored(stack, event.event_id)
    assert notifications["email"]["status"] == NotificationStatus.SENT
    assert record.status is EventStatus.PROCESSING  # the event was not failed either
