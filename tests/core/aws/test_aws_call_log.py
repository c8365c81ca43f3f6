"""`HERALD_AWS_CALL_LOG`: every client counts its calls per service and operation."""

from __future__ import annotations

import json
from pathlib import Path

from core.aws import clients as aws
from core.aws.clients import AwsClients, CallLog
from core.platform.settings import Settings
from tests.conftest import Stack


def test_clients_count_their_calls_into_a_file_per_process(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "calls"
    settings = stack.settings.model_copy(update={"aws_call_log": str(path)})
    clients = AwsClients(settings)
    clients.sqs.list_queues()
    clients.sqs.list_queues()
    clients.dynamodb.describe_table(TableName=clients.names.table)
    CallLog.for_path(str(path)).write()

    (written,) = tmp_path.glob("calls.*.json")
    calls = json.loads(written.read_text())["calls"]
    assert calls["sqs"]["ListQueues"] == 2
    assert calls["dynamodb"]["DescribeTable"] == 1


def test_off_by_default(settings: Settings) -> None:
    assert settings.aws_call_log is None
    logs_before = dict(aws._call_logs)
    AwsClients(settings).sqs.list_queues()
    assert aws._call_logs == logs_before
