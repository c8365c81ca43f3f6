"""The development emulator keeps DynamoDB's promise that a cancelled transaction changes
nothing: stock moto restores a whole-table copy and so undoes concurrent writes."""

from __future__ import annotations

import threading
import uuid

import boto3

WRITES = 200
# A bigger table makes moto's copy, and so the window in which writes get undone, longer.
SEED_ITEMS = 300


def test_cancelled_transactions_undo_no_concurrent_write(moto_endpoint: str) -> None:
    db = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    table = f"race-{uuid.uuid4().hex[:8]}"
    db.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
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
