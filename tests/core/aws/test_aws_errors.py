"""Which items of a write DynamoDB refused, read from its real answers: a refusal is the
write's condition, never throttling or a conflict, which refuse nothing."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from core.aws import dynamo
from core.aws import errors as aws_errors
from core.aws.clients import AwsClients
from core.platform.settings import Settings
from localstack.faults import FaultProxy, FaultRule
from tests.conftest import Stack


def key(name: str) -> dict[str, Any]:
    return {dynamo.PK: {"S": f"REFUSAL#{name}"}, dynamo.SK: {"S": "X"}}


def new_put(table: str, name: str) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": table,
            "Item": {**key(name), "note": {"S": f"new {name}"}},
            "ConditionExpression": "attribute_not_exists(PK)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def test_a_transaction_names_its_refused_items_with_what_is_stored(stack: Stack) -> None:
    db, table = stack.clients.dynamodb, stack.clients.names.table
    stored = {**key("taken"), "note": {"S": "stored first"}}
    db.put_item(TableName=table, Item=stored)
    missing = {"ConditionCheck": {"TableName": table, "Key": key("absent")}}
    missing["ConditionCheck"]["ConditionExpression"] = "attribute_exists(PK)"
    with pytest.raises(ClientError) as caught:
        db.transact_write_items(
            TransactItems=[new_put(table, "fresh"), new_put(table, "taken"), missing]
        )
    assert aws_errors.refused_items(caught.value) == {1: stored, 2: {}}
    assert not aws_errors.is_refusal(caught.value)  # the transaction's, not a single write's
    assert not aws_errors.is_retryable(caught.value)
    assert "Item" not in db.get_item(TableName=table, Key=key("fresh"))


def test_a_refused_single_write_is_item_zero(stack: Stack) -> None:
    db, table = stack.clients.dynamodb, stack.clients.names.table
    stored = {**key("single"), "note": {"S": "stored first"}}
    db.put_item(TableName=table, Item=stored)
    with pytest.raises(ClientError) as caught:
        db.put_item(**new_put(table, "single")["Put"])
    assert aws_errors.is_refusal(caught.value)
    assert aws_errors.refused_items(caught.value) == {0: stored}


@pytest.mark.parametrize("kind", ["transaction_conflict", "transaction_throttled"])
def test_a_transaction_cancelled_by_load_refuses_nothing(
    stack: Stack, fault_proxy: FaultProxy, faulty_settings: Settings, kind: str
) -> None:
    faulty = AwsClients(faulty_settings)
    fault_proxy.set_rules([FaultRule("dynamodb", kind, 1.0)])
    table = faulty.names.table
    with pytest.raises(ClientError) as caught:
        faulty.dynamodb.transact_write_items(
            TransactItems=[new_put(table, f"{kind}-{i}") for i in range(3)]
        )
    assert aws_errors.error_code(caught.value) == aws_errors.CANCELLED
    assert aws_errors.refused_items(caught.value) == {}
    assert aws_errors.is_retryable(caught.value)
