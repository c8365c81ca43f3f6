"""Each fault of the AWS fault layer reaches a real boto3 client as the error AWS gives;
writes that AWS applies before failing are applied upstream, the others are not."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from core.aws import dynamo
from core.aws.clients import AwsClients
from core.platform.settings import Settings
from localstack.faults import (
    DYNAMODB_WRITES,
    SERVICES,
    FaultProxy,
    FaultRule,
)
from tests.conftest import Stack

DYNAMODB_THROTTLES = {"ProvisionedThroughputExceededException", "ThrottlingException"}


def key(name: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": f"FAULT#{name}"}, dynamo.SK: {"S": "X"}}


def stored(stack: Stack, name: str) -> bool:
    """Whether the emulator itself holds the item, read past the proxy."""
    resp = stack.clients.dynamodb.get_item(TableName=stack.clients.names.table, Key=key(name))
    return "Item" in resp


def put(clients: AwsClients, name: str) -> None:
    clients.dynamodb.put_item(TableName=clients.names.table, Item=key(name))


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def new_queue(stack: Stack) -> str:
    return str(
        stack.clients.sqs.create_queue(QueueName=f"faults-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    )


def bodies(stack: Stack, queue_url: str) -> list[str]:
    """The body of every message in the queue, read past the proxy (and left visible)."""
    found: dict[str, str] = {}
    for _ in range(5):
        resp = stack.clients.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        found.update((m["MessageId"], m["Body"]) for m in resp.get("Messages", []))
    return sorted(found.values())


@pytest.fixture
def faulty(faulty_settings: Settings) -> AwsClients:
    return AwsClients(faulty_settings)


# --- each kind as a client sees it ---------------------------------------------------------


def test_throttled_writes_raise_throttling_and_are_not_applied(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    fault_proxy.set_rules([FaultRule("dynamodb", "throttle", 1.0, DYNAMODB_WRITES)])
    with pytest.raises(ClientError) as exc:
        put(faulty, "throttled")
    assert code_of(exc) in DYNAMODB_THROTTLES
    assert not stored(stack, "throttled")
    assert fault_proxy.stats()["throttle:PutItem"] > 1  # botocore retried it itself
    faulty.dynamodb.get_item(TableName=faulty.names.table, Key=key("throttled"))  # reads pass


def test_sqs_and_sns_throttling_codes(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    queue = new_queue(stack)
    fault_proxy.set_rules([FaultRule("sqs", "throttle", 1.0), FaultRule("sns", "throttle", 1.0)])
    with pytest.raises(ClientError) as sqs_exc:
        faulty.sqs.send_message(QueueUrl=queue, MessageBody="m")
    with pytest.raises(ClientError) as sns_exc:
        faulty.sns.publish(TopicArn=stack.clients.topic_arn, Message="m")
    assert code_of(sqs_exc) == "RequestThrottled"
    assert code_of(sns_exc) == "Throttling"
    assert sns_exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert bodies(stack, queue) == []


def test_internal_error_after_the_write_was_applied(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    queue = new_queue(stack)
    fault_proxy.set_rules(
        [
            FaultRule("dynamodb", "internal_after", 1.0),
            FaultRule("sqs", "internal_after", 1.0, frozenset({"SendMessage"})),
            FaultRule("sns", "internal_after", 1.0),
        ]
    )
    with pytest.raises(ClientError) as db_exc:
        put(faulty, "lost-answer")
    with pytest.raises(ClientError) as sqs_exc:
        faulty.sqs.send_message(QueueUrl=queue, MessageBody="sent")
    with pytest.raises(ClientError) as sns_exc:
        faulty.sns.publish(TopicArn=stack.clients.topic_arn, Message="m")
    assert code_of(db_exc) == "InternalServerError"
    assert code_of(sqs_exc) == "InternalError"
    assert code_of(sns_exc) == "InternalError"
    assert db_exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert stored(stack, "lost-answer")
    # Every attempt was applied: botocore's retries sent the message again each time.
    assert bodies(stack, queue) == ["sent"] * fault_proxy.stats()["internal_after:SendMessage"]


def test_timeout_after_the_write_was_applied(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings
) -> None:
    clients = AwsClients(faulty_settings.model_copy(update={"aws_timeout_seconds": 0.5}))
    fault_proxy.set_rules([FaultRule("dynamodb", "timeout_after", 1.0, hold_seconds=30)])
    with pytest.raises(ReadTimeoutError):
        put(clients, "timed-out")
    assert stored(stack, "timed-out")


def test_unavailable_is_a_503_and_applies_nothing(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    queue = new_queue(stack)
    fault_proxy.set_rules([FaultRule(service, "unavailable", 1.0) for service in SERVICES])
    with pytest.raises(ClientError) as db_exc:
        put(faulty, "unavailable")
    with pytest.raises(ClientError) as sqs_exc:
        faulty.sqs.send_message(QueueUrl=queue, MessageBody="m")
    with pytest.raises(ClientError) as sns_exc:
        faulty.sns.publish(TopicArn=stack.clients.topic_arn, Message="m")
    for exc in (db_exc, sqs_exc, sns_exc):
        assert code_of(exc) == "ServiceUnavailable"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert not stored(stack, "unavailable")
    assert bodies(stack, queue) == []


def test_single_write_conflict_is_not_retried(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    fault_proxy.set_rules([FaultRule("dynamodb", "conflict", 1.0)])
    with pytest.raises(ClientError) as exc:
        put(faulty, "conflicted")
    assert code_of(exc) == "TransactionConflictException"
    assert not stored(stack, "conflicted")
    assert fault_proxy.stats() == {"conflict:PutItem": 1}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("transaction_conflict", "TransactionConflict"), ("transaction_throttled", "ThrottlingError")],
)
def test_cancelled_transaction_names_one_item(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients, kind: str, reason: str
) -> None:
    fault_proxy.set_rules([FaultRule("dynamodb", kind, 1.0)])
    names = [f"{kind}-{i}" for i in range(3)]
    items = [{"Put": {"TableName": faulty.names.table, "Item": key(n)}} for n in names]
    with pytest.raises(ClientError) as exc:
        faulty.dynamodb.transact_write_items(TransactItems=items)
    assert code_of(exc) == "TransactionCanceledException"
    codes = [r["Code"] for r in exc.value.response["CancellationReasons"]]
    assert sorted(codes) == ["None", "None", reason]
    assert not any(stored(stack, n) for n in names)
    assert fault_proxy.stats() == {f"{kind}:TransactWriteItems": 1}


# --- partial batches -----------------------------------------------------------------------


def test_partial_send_batch(stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients) -> None:
    queue = new_queue(stack)
    fault_proxy.set_rules([FaultRule("sqs", "partial_batch", 1.0)])
    entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(8)]
    resp = faulty.sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    failed = {f["Id"] for f in resp["Failed"]}
    sent = {s["Id"] for s in resp["Successful"]}
    assert failed and sent | failed == {e["Id"] for e in entries} and not sent & failed
    assert {(f["SenderFault"], f["Code"]) for f in resp["Failed"]} == {(False, "InternalError")}
    assert bodies(stack, queue) == sorted(f"m{i}" for i in sent)


def test_partial_delete_batch_leaves_the_failed_messages(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    queue = new_queue(stack)
    for i in range(6):
        stack.clients.sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
    received: list[dict[str, Any]] = []
    for _ in range(10):
        resp = stack.clients.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        received += resp.get("Messages", [])
    assert len(received) == 6
    only_deletes = frozenset({"DeleteMessageBatch"})
    fault_proxy.set_rules([FaultRule("sqs", "partial_batch", 1.0, only_deletes)])
    entries = [{"Id": m["Body"], "ReceiptHandle": m["ReceiptHandle"]} for m in received]
    resp = faulty.sqs.delete_message_batch(QueueUrl=queue, Entries=entries)
    assert resp["Failed"]
    # Make whatever is left visible again (entries of deleted messages fail) and look.
    stack.clients.sqs.change_message_visibility_batch(
        QueueUrl=queue, Entries=[{**entry, "VisibilityTimeout": 0} for entry in entries]
    )
    assert bodies(stack, queue) == sorted(f["Id"] for f in resp["Failed"])


def test_partial_publish_batch(stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients) -> None:
    queue = new_queue(stack)
    arn = stack.clients.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    stack.clients.sns.subscribe(
        TopicArn=stack.clients.topic_arn,
        Protocol="sqs",
        Endpoint=arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    fault_proxy.set_rules([FaultRule("sns", "partial_batch", 1.0)])
    entries = [{"Id": f"e{i}", "Message": f"m{i}"} for i in range(8)]
    resp = faulty.sns.publish_batch(
        TopicArn=stack.clients.topic_arn, PublishBatchRequestEntries=entries
    )
    published = {s["Id"] for s in resp["Successful"]}
    assert {f["Id"] for f in resp["Failed"]} == {e["Id"] for e in entries} - published
    assert all(f["SenderFault"] is False for f in resp["Failed"])
    assert bodies(stack, queue) == sorted(f"m{i[1:]}" for i in published)


def test_partial_batch_write_leaves_unprocessed_items(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    table = faulty.names.table
    fault_proxy.set_rules([FaultRule("dynamodb", "partial_batch", 1.0)])
    names = [f"batch-{i}" for i in range(6)]
    requests = [{"PutRequest": {"Item": key(n)}} for n in names]
    resp = faulty.dynamodb.batch_write_item(RequestItems={table: requests})
    unprocessed = [r["PutRequest"]["Item"] for r in resp["UnprocessedItems"][table]]
    assert 0 < len(unprocessed) < len(names)
    assert {n for n in names if not stored(stack, n)} == {
        i[dynamo.PK]["S"].removeprefix("FAULT#") for i in unprocessed
    }


# --- what AWS promises that the proxy keeps -----------------------------------------------


def test_repeated_transaction_token_answers_like_dynamodb(
    stack: Stack, fault_proxy: FaultProxy, faulty: AwsClients
) -> None:
    table = faulty.names.table
    items = [
        {
            "Put": {
                "TableName": table,
                "Item": key(f"once-{i}"),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }
        for i in range(2)
    ]
    token = str(uuid.uuid4())
    fault_proxy.set_rules([FaultRule("dynamodb", "internal_after", 1.0)])
    with pytest.raises(ClientError) as exc:
        faulty.dynamodb.transact_write_items(TransactItems=items, ClientRequestToken=token)
    assert code_of(exc) == "InternalServerError"  # every retry was answered 500 too
    fault_proxy.clear()
    # The same token again: DynamoDB answers the first success, conditions are not re-run.
    faulty.dynamodb.transact_write_items(TransactItems=items, ClientRequestToken=token)
    with pytest.raises(ClientError) as mismatch:
        faulty.dynamodb.transact_write_items(TransactItems=items[:1], ClientRequestToken=token)
    assert code_of(mismatch) == "IdempotentParameterMismatchException"
    assert stored(stack, "once-0") and stored(stack, "once-1")
