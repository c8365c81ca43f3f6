"""The email worker's prepare step for reports (listeners/worker.py `report_attachments`):
it reads the event's table when the email is sent, so DynamoDB's failures there are that
send's outcome, never the worker's."""

from __future__ import annotations

import pytest

from core.aws.clients import AwsClients
from core.catalogue.event_types import Category, Priority
from core.catalogue.models import NotificationMessage
from core.platform.errors import PermanentError, RetryableError
from core.platform.settings import Settings
from listeners.worker import report_attachments
from localstack.faults import FaultProxy, FaultRule
from tests.conftest import Stack


def message(event_type: str = "trend.report") -> NotificationMessage:
    return NotificationMessage(
        notification_id="e1:email:analyst",
        event_id="e1",
        event_type=event_type,
        category=Category.trend,
        priority=Priority.normal,
        channel="email",
        recipient_id="analyst",
        addresses=["analyst@example.com"],
        content={"subject": "s", "text": "t"},
        created_at="2030-01-15T08:00:00.000000Z",
    )


def test_an_unreadable_event_is_retried_and_a_gone_one_fails(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings
) -> None:
    prepare = report_attachments(AwsClients(faulty_settings))
    fault_proxy.set_rules([FaultRule("dynamodb", "unavailable", 1.0, frozenset({"GetItem"}))])
    with pytest.raises(RetryableError, match="report: event unreadable"):
        prepare(message())
    assert prepare(message("trend.sales_spike")) == message("trend.sales_spike")  # not read
    fault_proxy.set_rules([])
    with pytest.raises(PermanentError, match="report: its event is gone"):
        prepare(message())
