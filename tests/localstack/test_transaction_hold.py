"""The emulator's transaction hold: writes to the items of a transaction that is still
running are refused the way DynamoDB refuses them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.localstack.test_faults import code_of
from tests.support import free_port, http_ok, start_python, stop, wait_until

HOLD_MS = 3000


@pytest.fixture(scope="module")
def holding_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An emulator of its own whose transactions hold their items for HOLD_MS."""
    port = free_port()
    log = Path(tmp_path_factory.mktemp("holding")) / "moto.log"
    proc = start_python(
        ["-m", "localstack.emulator", "--port", str(port), "--quiet"],
        env={"HERALD_EMULATOR_TRANSACTION_HOLD_MS": str(HOLD_MS)},
        log_path=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: http_ok(f"{url}/moto-api/"), timeout=30), log.read_text()
        yield url
    finally:
        stop(proc)


def test_writes_to_items_of_a_running_transaction_conflict(holding_endpoint: str) -> None:
    db = boto3.client(
        "dynamodb",
        endpoint_url=holding_endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=HOLD_MS / 1000 + 30),
    )
    table = f"hold-{uuid.uuid4().hex[:8]}"
    db.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    def item(name: str, **extra: str) -> dict[str, Any]:
        return {"PK": {"S": name}, **{k: {"S": v} for k, v in extra.items()}}

    def read(name: str) -> dict[str, Any] | None:
        return db.get_item(TableName=table, Key=item(name), ConsistentRead=True).get("Item")

    token = str(uuid.uuid4())
    holder = [{"Put": {"TableName": table, "Item": item(n, by="holder")}} for n in ("x", "y")]
    outcome: list[Any] = []
    thread = threading.Thread(
        target=lambda: outcome.append(
            db.transact_write_items(TransactItems=holder, ClientRequestToken=token)
        )
    )
    thread.start()
    try:
        assert wait_until(lambda: read("x") is not None, timeout=10)  # applied, answer held
        with pytest.raises(ClientError) as single:
            db.put_item(TableName=table, Item=item("x", by="single"))
        with pytest.raises(ClientError) as other:
            db.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": item("z")}},
                    {"Delete": {"TableName": table, "Key": item("y")}},
                ]
            )
        with pytest.raises(ClientError) as repeat:
            db.transact_write_items(TransactItems=holder, ClientRequestToken=token)
        db.put_item(TableName=table, Item=item("free"))  # items it does not name are free
    finally:
        thread.join()
    assert code_of(single) == "TransactionConflictException"
    assert code_of(other) == "TransactionCanceledException"
    reasons = other.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "TransactionConflict"]
    assert code_of(repeat) == "TransactionInProgressException"
    assert read("z") is None and read("y") == item("y", by="holder")
    assert read("x") == item("x", by="holder") and read("free") is not None
    assert outcome and outcome[0]["ResponseMetadata"]["HTTPStatusCode"] == 200
    db.put_item(TableName=table, Item=item("x", by="after"))  # released with its answer
    assert read("x") == item("x", by="after")
