"""A user's event's queued records are listed by the router and written by their first
claim: two write units a notification less, with nothing a reader, a redelivery or the
reconciler can tell apart from a record written at routing."""

from __future__ import annotations

from typing import Any

from core.catalogue.models import EventStatus, NotificationMessage, NotificationStatus
from core.ledger.outcome_records import Outcome
from core.ledger.record_transitions import Claim
from core.ledger.wiring import Ledger
from tests.conftest import Stack
from tests.core.ledger.test_record_counts import queued, routed_user_event
from tests.factories import ledger_of


def raw_record(stack: Stack, event_id: str, channel: str) -> dict[str, Any] | None:
    key = {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": f"NOTIF#{channel}#ana"}}
    got = stack.clients.dynamodb.get_item(TableName=stack.clients.names.table, Key=key)
    return got.get("Item")


def message_of(stack: Stack, channel: str) -> NotificationMessage:
    (first,) = queued(stack, channel)
    return NotificationMessage.model_validate_json(first.body)


def claim(ledger: Ledger, message: NotificationMessage) -> Claim | str | None:
    """A worker's claim: the Claim, or the status that refused it (None: no record)."""
    return ledger.transitions.claim_many([message], 60)[0]


def test_routing_lists_queued_records_and_readers_show_them_queued(stack: Stack) -> None:
    event_id = routed_user_event(stack)

    assert raw_record(stack, event_id, "email") is None
    assert raw_record(stack, event_id, "sms") is None
    ledger = ledger_of(stack)
    record, notifications = ledger.event_reads.get(event_id) or (None, [])
    assert record is not None and record.counts.total == 2 and record.counts.sent == 0
    assert {n["channel"]: n["status"] for n in notifications} == {
        "email": "QUEUED",
        "sms": "QUEUED",
    }
    assert {n["channel"]: n["recipient_masked"] for n in notifications} == {
        "email": "a***@example.com",
        "sms": "+*******0123",
    }
    # The reconciler's audit sees them unsettled: the event is not settled from records.
    states = ledger.stale_events.notification_states(event_id)
    assert sorted(s["status"] for s in states) == ["QUEUED", "QUEUED"]
    assert ledger.settlement.settle_from_records(event_id) is None


def test_the_first_claim_writes_the_record_and_a_second_is_refused(stack: Stack) -> None:
    event_id = routed_user_event(stack)
    email = message_of(stack, "email")

    ledger = ledger_of(stack)
    first = claim(ledger, email)
    again = claim(ledger, email)

    assert first is not None and not isinstance(first, str) and first.attempt == 1
    assert again == NotificationStatus.SENDING  # a redelivered message does not send twice
    written = raw_record(stack, event_id, "email")
    assert written is not None
    assert written["status"] == {"S": "SENDING"} and written["attempts"] == {"N": "1"}
    assert written["recipient_masked"] == {"S": "a***@example.com"}
    assert [h["M"]["status"]["S"] for h in written["history"]["L"]] == ["QUEUED", "SENDING"]


def test_failing_an_unclaimed_record_writes_it_failed_and_later_claims_are_refused(
    stack: Stack,
) -> None:
    event_id = routed_user_event(stack)
    email, sms = message_of(stack, "email"), message_of(stack, "sms")

    ledger = ledger_of(stack)
    ledger.outcomes.record_outcomes(
        [Outcome(email, "", NotificationStatus.FAILED, error="no such mailbox")]
    )

    assert claim(ledger, email) == NotificationStatus.FAILED
    assert ledger.transitions.fail_stranded(event_id, "NOTIF#sms#ana", "lost", absent=True)
    assert claim(ledger, sms) == NotificationStatus.FAILED
    assert ledger.settlement.settle_from_records(event_id) is EventStatus.FAILED
    record, notifications = ledger.event_reads.get(event_id) or (None, [])
    assert record is not None and (record.counts.total, record.counts.failed) == (2, 2)
    assert {n["channel"]: n["last_error"] for n in notifications} == {
        "email": "no such mailbox",
        "sms": "lost",
    }


def test_pages_of_notifications_show_each_record_once_written_or_not(stack: Stack) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.conftest import AUTH

    event_id = routed_user_event(stack)
    assert claim(ledger_of(stack), message_of(stack, "email"))  # email written, sms not

    with TestClient(create_app(stack.settings, stack.clients), headers=AUTH) as api:
        pages, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = api.get(f"/events/{event_id}/notifications", params=params).json()
            pages.append([(n["channel"], n["status"]) for n in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        whole = api.get(f"/events/{event_id}").json()

    # The limit bounds the records read; a listed record not written yet shows on the page
    # it sorts into, so it may make that page one longer.
    assert [n for page in pages for n in page] == [("email", "SENDING"), ("sms", "QUEUED")]
    assert [n["channel"] for n in whole["notifications"]] == ["email", "sms"]
    assert whole["counts"]["total"] == 2
