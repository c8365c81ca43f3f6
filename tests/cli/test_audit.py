"""`herald audit` finds every way an event's status, tally, records and the provider's
account of it can disagree, and nothing when they agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cli.audit import main as audit_main
from cli.audit import run_audit
from core.aws import dynamo
from core.catalogue.models import NotificationMessage, iso
from core.ledger.wiring import Ledger
from core.platform.settings import Settings
from listeners.batch import BatchSettler
from listeners.delivery import DeliveryHandler, RetryPolicy
from listeners.messages import Ack, QueueMessage
from listeners.worker import build_worker
from tests.conftest import Stack
from tests.factories import (
    OK,
    QUEUE,
    ScriptedNotifier,
    counted,
    ledger_of,
    notification,
    processing_event,
    queue_notification,
    recorded_event,
)


def since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=5)


def deliver(stack: Stack, handler: Any) -> None:
    batch = [QueueMessage.from_sqs(QUEUE, raw) for raw in stack.receive_all(QUEUE)]
    results = handler(batch)
    assert list(results) == [Ack()] * len(batch)
    BatchSettler(stack.clients.sqs, stack.clients.queue_url).settle(batch, results)


def set_item(stack: Stack, pk: str, sk: str, **values: Any) -> None:
    """Write attributes straight into an item: the corruption an audit must find."""
    names = {f"#a{i}": k for i, k in enumerate(values)}
    stack.clients.dynamodb.update_item(
        TableName=stack.clients.names.table,
        Key={dynamo.PK: {"S": pk}, dynamo.SK: {"S": sk}},
        UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={
            f":v{i}": dynamo.to_item({"v": v})["v"] for i, v in enumerate(values.values())
        },
    )


def found(report: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in report.disagreements:
        out.setdefault(item.event_id, []).append(item.what)
    return out


def test_status_records_and_the_provider_agree_or_each_disagreement_is_named(
    stack: Stack, sandbox: Any
) -> None:
    settings = Settings(
        **{**stack.settings.model_dump(), "sandbox": True, "sandbox_port": sandbox.port}
    )
    ledger = ledger_of(stack)
    _, twilio, _ = build_worker(settings, stack.clients, "sms")
    try:
        delivered = queue_notification(stack, ledger)
        deliver(stack, twilio)
        report = run_audit(settings, since(), datetime.now(UTC), sandbox.url, 0)
        assert (report.clean, report.events, report.notifications) == (True, 1, 1)
        assert "sms" in report.provider_channels

        # Sent as far as Herald knows, but the provider never saw it.
        unseen = queue_notification(stack, ledger)
        scripted = DeliveryHandler(
            notifier=ScriptedNotifier(OK),
            ledger=ledger,
            policy=RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
            lease_seconds=30,
        )
        try:
            deliver(stack, scripted)
        finally:
            scripted.close()
        # The provider took a notification of the first event that it has no record of.
        event = ledger.event_reads.get(delivered.event_id)
        assert event is not None
        twilio.notifier.send(ghost_of(delivered))
    finally:
        twilio.close()
    # And the first event FAILED although its one notification was sent.
    set_item(stack, dynamo.event_pk(delivered.event_id), dynamo.EVENT_SK, status="FAILED")

    report = run_audit(settings, since(), datetime.now(UTC), sandbox.url, 0)
    assert found(report) == {
        delivered.event_id: [
            "FAILED but none of its 1 notifications failed",
            "a provider accepted notifications it has no record of: "
            f"{delivered.event_id}:sms:u-ghost",
        ],
        unseen.event_id: [f"sent but no provider accepted: {unseen.notification_id}"],
    }
    assert run_audit(settings, since(), datetime.now(UTC), None, 0).events == 2


def ghost_of(message: NotificationMessage) -> NotificationMessage:
    return message.model_copy(
        update={"notification_id": f"{message.event_id}:sms:u-ghost", "recipient_id": "u-ghost"}
    )


def topic_event(ledger: Ledger) -> list[NotificationMessage]:
    """A topic event with two records QUEUED, counted, its fan-out complete."""
    event = processing_event(ledger, topic="charts.audit")
    messages = [notification(event, f"u-{i}") for i in range(2)]
    counted(ledger, messages)
    return messages


def test_tallies_and_open_or_failed_events_that_disagree_with_their_records(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = ledger_of(stack)
    miscounted, still_sending, forgotten = (topic_event(ledger) for _ in range(3))
    set_item(stack, dynamo.event_pk(miscounted[0].event_id), dynamo.TALLY_SK, sent=1)
    assert ledger.event_status.fail(still_sending[0].event_id, "gave up")
    for message in forgotten:  # sent, counted, and the event never settled
        key = dynamo.record_pk(message.event_id, message.recipient_id, 1)
        set_item(stack, key, f"NOTIF#sms#{message.recipient_id}", status="SENT")
    set_item(stack, dynamo.event_pk(forgotten[0].event_id), dynamo.TALLY_SK, sent=2)

    report = run_audit(stack.settings, since(), datetime.now(UTC), None, 0)
    assert found(report) == {
        miscounted[0].event_id: ["tally 2/1/0/0 but its records are 2/0/0/0"],
        still_sending[0].event_id: [
            "FAILED with notifications still in flight: "
            + ", ".join(m.notification_id for m in still_sending)
        ],
        forgotten[0].event_id: ["PROCESSING but every notification settled"],
    }
    # Open events touched within the moving window are left alone.
    moving = run_audit(stack.settings, since(), datetime.now(UTC), None, 3600)
    assert moving.moving == 2 and set(found(moving)) == {still_sending[0].event_id}

    monkeypatch.setenv("AWS_ENDPOINT_URL", str(stack.settings.aws_endpoint_url))
    monkeypatch.setenv("HERALD_RESOURCE_PREFIX", stack.settings.resource_prefix)
    assert audit_main(["--since", "5m", "--moving-seconds", "0", "--no-provider"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(found(report))
    assert audit_main(["--since", "5m", "--moving-seconds", "0", "--no-provider", "--json"]) == 1
    assert len(json.loads(capsys.readouterr().out)["disagreements"]) == 3
    closed = ["--since", "5m", "--sandbox", "http://127.0.0.1:9"]  # nothing listens there
    assert audit_main(closed) == 2
    assert "--no-provider skips it" in capsys.readouterr().err
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert audit_main(["--since", future, "--until", future, "--no-provider"]) == 0


def test_an_open_event_unchanged_past_the_stuck_period_is_stuck(stack: Stack) -> None:
    ledger = ledger_of(stack)
    abandoned = recorded_event(ledger)  # START, its message lost, nobody republished it
    then = iso(datetime.now(UTC) - timedelta(minutes=3))
    set_item(stack, dynamo.event_pk(abandoned.event_id), dynamo.EVENT_SK, updated_at=then)
    recent = recorded_event(ledger)  # open too, but changed a moment ago

    def audit(stuck: float | None) -> dict[str, list[str]]:
        report = run_audit(stack.settings, since(), datetime.now(UTC), None, 0, stuck_seconds=stuck)
        return found(report)

    assert audit(None) == {}  # open is not wrong in itself
    assert audit(120) == {abandoned.event_id: [f"still START since {then}: stuck"]}
    assert recent.event_id not in audit(120)
