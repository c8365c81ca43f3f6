"""Priority isolation end to end: a critical event overtakes a normal backlog."""

from __future__ import annotations

import signal
from typing import Any

from core.ledger.notification_records import NewNotification
from core.ledger.wiring import build_ledger
from tests.e2e.conftest import PREFIX, Herald
from tests.factories import notification, processing_event
from tests.support import wait_until

BACKLOG = 500


def queue_backlog(herald: Herald, size: int) -> str:
    """`size` normal SMS notifications of one trend event, created and counted as the
    router creates a topic's, and queued."""
    ledger = build_ledger(herald.clients.dynamodb, herald.clients.names.table)
    event = processing_event(ledger, topic="charts")
    messages = [
        notification(event, f"b-{i}", "sms", addresses=[f"+1415555{i:04d}"]) for i in range(size)
    ]
    ledger.creation.create_counted([NewNotification(m) for m in messages])
    url = herald.clients.queue_url(f"{PREFIX}-sms-normal")
    for start in range(0, size, 10):
        herald.clients.sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": m.model_dump_json()}
                for i, m in enumerate(messages[start : start + 10])
            ],
        )
    return event.event_id


def test_critical_event_is_delivered_while_the_normal_backlog_waits(
    herald: Herald, sandbox: Any
) -> None:
    worker = herald.processes["worker-sms"]
    worker.send_signal(signal.SIGSTOP)  # paused while the backlog is filled, so it all waits
    try:
        backlog_event = queue_backlog(herald, BACKLOG)
    finally:
        worker.send_signal(signal.SIGCONT)
    user = herald.user(phone="+14155550199", categories={"security": ["sms"]})
    event_id = herald.post_event(
        {
            "type": "security.login_alert",
            "user_id": user,
            "data": {"ip": "203.0.113.7", "device": "x"},
        }
    )
    herald.wait_for_notification(event_id, "sms", {"SENT"}, timeout=60)
    backlog_sent = [
        m for m in sandbox.messages("twilio") if str(m["notification_id"]).startswith(backlog_event)
    ]
    assert len(backlog_sent) < BACKLOG, "the critical event waited for the whole backlog"
    assert herald.queue_depth("sms-normal") > 0
    assert wait_until(lambda: herald.queue_depth("sms-critical") == 0, timeout=10)
