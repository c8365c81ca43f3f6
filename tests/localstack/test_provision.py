"""Provisioning an older table: a missing index is added, one a run; an index whose
projection this Herald no longer expects is reported, not silently used."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core.ledger import event_index
from localstack.provision import add_missing_listing_gsis
from tests.conftest import Stack


def older_table(stack: Stack, name: str) -> dict[str, Any]:
    """A table with only the status index, projecting what an earlier Herald did."""
    db = stack.clients.dynamodb
    db.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"}
            for a in ("PK", "SK", event_index.STATUS_ATTR, event_index.EVENT_SORT)
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": event_index.BY_STATUS,
                "KeySchema": [
                    {"AttributeName": event_index.STATUS_ATTR, "KeyType": "HASH"},
                    {"AttributeName": event_index.EVENT_SORT, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["tenant", "updated_at", "last_published_at"],
                },
            }
        ],
    )
    return dict(db.describe_table(TableName=name)["Table"])


def index_names(stack: Stack, name: str) -> set[str]:
    table = stack.clients.dynamodb.describe_table(TableName=name)["Table"]
    return {g["IndexName"] for g in table.get("GlobalSecondaryIndexes", [])}


def test_an_older_projection_is_reported_and_a_missing_index_added(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    name = "herald-test-older"
    table = older_table(stack, name)
    with caplog.at_level(logging.WARNING, logger="herald.provision"):
        add_missing_listing_gsis(stack.clients.dynamodb, name, table)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(event_index.BY_STATUS in w and "rebuild" in w for w in warnings)
    assert len(index_names(stack, name)) == 2  # one index added this run


def test_a_current_table_is_left_as_it_is(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    name = stack.clients.names.table
    before = index_names(stack, name)
    table = stack.clients.dynamodb.describe_table(TableName=name)["Table"]
    with caplog.at_level(logging.INFO, logger="herald.provision"):
        add_missing_listing_gsis(stack.clients.dynamodb, name, table)
    assert not [r for r in caplog.records if r.name == "herald.provision"]
    assert index_names(stack, name) == before
