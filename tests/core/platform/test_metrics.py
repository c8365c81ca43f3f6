"""AWS calls are counted by service, operation and outcome through the botocore hook that
core/aws/clients.py registers on every client; label values stay bounded."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import REGISTRY

from core.aws import call_metrics
from core.aws.clients import AwsClients
from core.platform import metrics
from core.platform.settings import Settings
from localstack.faults import FaultRule
from tests.conftest import Stack
from tests.support import free_port


def aws_calls(service: str, operation: str, outcome: str) -> float:
    labels = {"service": service, "operation": operation, "outcome": outcome}
    return REGISTRY.get_sample_value("herald_aws_requests_total", labels) or 0.0


def test_a_refused_conditional_write_counts_as_a_conflict(stack: Stack) -> None:
    ok_before = aws_calls("dynamodb", "PutItem", "ok")
    conflict_before = aws_calls("dynamodb", "PutItem", "conflict")
    item = {"PK": {"S": "METRICS#1"}, "SK": {"S": "ONE"}}
    put = {
        "TableName": stack.clients.names.table,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(PK)",
    }
    stack.clients.dynamodb.put_item(**put)
    with pytest.raises(ClientError):
        stack.clients.dynamodb.put_item(**put)
    assert aws_calls("dynamodb", "PutItem", "ok") == ok_before + 1
    assert aws_calls("dynamodb", "PutItem", "conflict") == conflict_before + 1


def test_a_missing_queue_counts_as_an_error(stack: Stack) -> None:
    before = aws_calls("sqs", "GetQueueUrl", "error")
    with pytest.raises(ClientError):
        stack.clients.sqs.get_queue_url(QueueName="no-such-queue")
    assert aws_calls("sqs", "GetQueueUrl", "error") == before + 1


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (None, "ok"),
        ("ThrottlingException", "throttled"),
        ("ProvisionedThroughputExceededException", "throttled"),
        ("TransactionCanceledException", "conflict"),
        ("ConditionalCheckFailedException", "conflict"),
        ("ValidationException", "error"),
    ],
)
def test_error_codes_fold_into_four_outcomes(code: str | None, outcome: str) -> None:
    assert call_metrics.aws_outcome(code) == outcome


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("opted out of sms", "opted_out"),
        ("quiet hours (22:00-07:00 Europe/Berlin)", "quiet_hours"),
        ("no phone number", "no_contact"),
        (None, "no_contact"),
    ],
)
def test_skip_reasons_fold_into_bounded_kinds(reason: str | None, kind: str) -> None:
    assert metrics.skip_kind(reason) == kind


def test_age_since_a_timestamp_is_never_negative() -> None:
    assert metrics.since("2030-01-01T00:00:10.000000Z", now=1893456000.0) == 0.0
    assert metrics.since("2030-01-01T00:00:00.000000Z", now=1893456030.0) == 30.0
    assert metrics.since("not a time") == 0.0


def test_a_call_that_gets_no_answer_counts_as_an_error() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        aws_timeout_seconds=0.3,
        aws_max_attempts=1,
    )
    before = aws_calls("dynamodb", "DescribeTable", "error")
    with pytest.raises(BotoCoreError):
        AwsClients(settings).dynamodb.describe_table(TableName="anything")
    assert aws_calls("dynamodb", "DescribeTable", "error") == before + 1


def test_throttles_count_as_throttled_with_their_retries(
    stack: Stack, faulty_settings: Settings, fault_proxy: Any
) -> None:
    fault_proxy.set_rules([FaultRule("dynamodb", "throttle", 1.0, frozenset({"DescribeTable"}))])
    clients = AwsClients(faulty_settings.model_copy(update={"aws_max_attempts": 3}))
    throttled = aws_calls("dynamodb", "DescribeTable", "throttled")
    labels = {"service": "dynamodb", "operation": "DescribeTable"}
    retries = REGISTRY.get_sample_value("herald_aws_retries_total", labels) or 0.0
    with pytest.raises(ClientError):
        clients.dynamodb.describe_table(TableName=stack.clients.names.table)
    assert aws_calls("dynamodb", "DescribeTable", "throttled") == throttled + 1
    assert REGISTRY.get_sample_value("herald_aws_retries_total", labels) == retries + 2
