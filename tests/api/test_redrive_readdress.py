"""A redrive sends to the recipient's current address, keeping the original in history."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from core.ledger.wiring import Ledger
from tests.api.test_dlq import failed_notification
from tests.conftest import Stack
from tests.factories import QUEUE, ledger_of


@pytest.fixture
def ledger(stack: Stack) -> Ledger:
    return ledger_of(stack)


def test_a_fixed_phone_number_is_used_on_redrive(
    client: TestClient, stack: Stack, ledger: Ledger
) -> None:
    message = failed_notification(stack, ledger)  # sent to +14155550123 for u-1, failed
    assert client.put("/users/u-1", json={"phone": "+14155550199"}).is_success

    result = client.post("/dlq/sms-normal/redrive").json()
    assert result["notifications_requeued"] == 1

    [queued] = stack.receive_all(QUEUE)
    assert json.loads(queued["Body"])["addresses"] == ["+14155550199"]
    event = client.get(f"/events/{message.event_id}").json()
    last = event["notifications"][0]["history"][-1]
    assert last["status"] == "QUEUED"
    assert "now +*******0199 (was +*******0123)" in last["detail"]


def test_an_unchanged_or_unknown_recipient_is_redriven_as_it_was(
    client: TestClient, stack: Stack, ledger: Ledger
) -> None:
    message = failed_notification(stack, ledger)  # u-1 has no profile: nothing to look up
    client.post("/dlq/sms-normal/redrive")
    [queued] = stack.receive_all(QUEUE)
    assert json.loads(queued["Body"])["addresses"] == message.addresses
    event = client.get(f"/events/{message.event_id}").json()
    assert event["notifications"][0]["history"][-1]["detail"] == (
        "redriven from the dead-letter queue"
    )
