"""A record's history is capped, and the status API still says how many receipts came past
the cap and which was the newest."""

from __future__ import annotations

from fastapi.testclient import TestClient

from core.catalogue.models import NotificationStatus
from core.ledger.notification_records import HISTORY_MAX
from tests.api.test_webhooks import client  # noqa: F401
from tests.conftest import Stack
from tests.core.ledger.test_receipt_history import sent_record
from tests.factories import ledger_of


def test_the_status_api_reports_receipts_past_a_full_history(
    stack: Stack,
    client: TestClient,  # noqa: F811
) -> None:
    ids = sent_record(stack, HISTORY_MAX - 1)
    receipts = ledger_of(stack).receipts
    for i in range(6):
        receipts.apply("sendgrid", f"open-{i}", 600, ids, NotificationStatus.DELIVERED, f"open {i}")
    shown = client.get(f"/events/{ids[0]}").json()["notifications"][0]
    assert len(shown["history"]) == HISTORY_MAX
    assert shown["history"][-1]["detail"] == "open 0"
    assert shown["history_dropped"] == 5
    assert shown["last_receipt"]["detail"] == "open 5"
    assert shown["status"] == "DELIVERED"


def test_a_history_under_its_cap_drops_nothing(
    stack: Stack,
    client: TestClient,  # noqa: F811
) -> None:
    ids = sent_record(stack, 3)
    ledger_of(stack).receipts.apply(
        "sendgrid", "open-a", 600, ids, NotificationStatus.DELIVERED, "opened"
    )
    shown = client.get(f"/events/{ids[0]}").json()["notifications"][0]
    assert [h["detail"] for h in shown["history"]][-1] == "opened"
    assert shown["history_dropped"] == 0
    assert shown["last_receipt"] is None
