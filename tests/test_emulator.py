"""The development emulator keeps DynamoDB's promise that a cancelled transaction changes
nothing: stock moto restores a whole-table copy and so undoes concurrent writes."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import boto3

WRITES = 200
# A bigger table makes moto's copy, and so the window in which writes get undone, longer.
SEED_ITEMS = 300


def new_table(endpoint: str, prefix: str) -> tuple[Any, str]:
    db = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    table = f"{prefix}-{uuid.uuid4().hex[:8]}"
    db.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return db, table


def test_cancelled_transactions_undo_no_concurrent_write(moto_endpoint: str) -> None:
    db, table = new_table(moto_endpoint, "race")
    seed = [
        {"PutRequest": {"Item": {"PK": {"S": f"s{i}"}, "pad": {"S": "x" * 200}}}}
        for i in range(SEED_ITEMS)
    ]
    for start in range(0, len(seed), 25):
        db.batch_write_item(RequestItems={table: seed[start : start + 25]})
    db.put_item(TableName=table, Item={"PK": {"S": "taken"}})
    stop = threading.Event()
    cancelled = 0
    errors: list[Exception] = []

    def cancel_transactions() -> None:
        nonlocal cancelled
        while not stop.is_set():
            try:
                db.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": table, "Item": {"PK": {"S": "other"}}}},
                        {
                            "Put": {
                                "TableName": table,
                                "Item": {"PK": {"S": "taken"}},
                                "ConditionExpression": "attribute_not_exists(PK)",
                            }
                        },
                    ]
                )
            except db.exceptions.TransactionCanceledException:
                cancelled += 1
            except Exception as exc:  # stock moto also answers 500s here
                errors.append(exc)
                return

    thread = threading.Thread(target=cancel_transactions)
    thread.start()
    try:
        for i in range(WRITES):
            db.put_item(TableName=table, Item={"PK": {"S": f"w{i}"}})
    finally:
        stop.set()
        thread.join()
    kept = [
        i
        for i in range(WRITES)
        if "Item" in db.get_item(TableName=table, Key={"PK": {"S": f"w{i}"}})
    ]
    assert errors == []
    assert cancelled > 0
    assert len(kept) == WRITES
    assert "Item" not in db.get_item(TableName=table, Key={"PK": {"S": "other"}})


def test_a_cancelled_transaction_puts_back_exactly_the_items_it_changed(
    moto_endpoint: str,
) -> None:
    db, table = new_table(moto_endpoint, "undo")
    db.put_item(TableName=table, Item={"PK": {"S": "a"}, "n": {"N": "1"}, "tag": {"S": "old"}})
    db.put_item(TableName=table, Item={"PK": {"S": "c"}, "tag": {"S": "keep"}})
    # moto applies the items in order: the update and both puts happen before the check
    # on the last item fails, so all three must be undone.
    transaction = [
        {
            "Update": {
                "TableName": table,
                "Key": {"PK": {"S": "a"}},
                "UpdateExpression": "SET n = n + :one REMOVE tag",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {"Put": {"TableName": table, "Item": {"PK": {"S": "b"}}}},
        {"Put": {"TableName": table, "Item": {"PK": {"S": "c"}, "tag": {"S": "new"}}}},
        {
            "ConditionCheck": {
                "TableName": table,
                "Key": {"PK": {"S": "missing"}},
                "ConditionExpression": "attribute_exists(PK)",
            }
        },
    ]
    try:
        db.transact_write_items(TransactItems=transaction)
    except db.exceptions.TransactionCanceledException as exc:
        codes = [r["Code"] for r in exc.response["CancellationReasons"]]
    else:
        raise AssertionError("the transaction should have been cancelled")
    assert codes == ["None", "None", "None", "ConditionalCheckFailed"]
    item = db.get_item(TableName=table, Key={"PK": {"S": "a"}})["Item"]
    assert item == {"PK": {"S": "a"}, "n": {"N": "1"}, "tag": {"S": "old"}}
    assert "Item" not in db.get_item(TableName=table, Key={"PK": {"S": "b"}})
    assert db.get_item(TableName=table, Key={"PK": {"S": "c"}})["Item"]["tag"] == {"S": "keep"}


def test_queue_attributes_read_one_at_a_time_are_what_stock_moto_computes() -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    from localstack.emulator import _QueueAttributes

    backend = sqs_backends[DEFAULT_ACCOUNT_ID]["eu-west-3"]
    dlq = backend.create_queue(f"dlq-{uuid.uuid4().hex[:6]}")
    redrive = json.dumps({"deadLetterTargetArn": dlq.queue_arn, "maxReceiveCount": 5})
    queues = [
        dlq,
        backend.create_queue(f"q-{uuid.uuid4().hex[:6]}", RedrivePolicy=redrive),
        backend.create_queue(
            f"f-{uuid.uuid4().hex[:6]}.fifo", FifoQueue="true", ContentBasedDeduplication="true"
        ),
        backend.create_queue(f"p-{uuid.uuid4().hex[:6]}", Policy='{"Version": "2012-10-17"}'),
    ]
    backend.send_message(queues[1].name, "hello")
    for queue in queues:
        stock = queue.attributes  # this process runs moto unchanged
        assert dict(_QueueAttributes(queue)) == stock
        assert _QueueAttributes(queue).get("ContentBasedDeduplication") == stock.get(
            "ContentBasedDeduplication"
        )
    assert _QueueAttributes(queues[1])["ApproximateNumberOfMessages"] == 1
