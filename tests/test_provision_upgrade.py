"""Provisioning a table made before an index existed adds the index (a sharded event listing)."""

from __future__ import annotations

from core.directory.listing import GSI_BY_DIRECTORY
from core.ledger import event_index
from localstack.provision import ensure_table
from tests.conftest import Stack


def indexes(stack: Stack) -> set[str]:
    table = stack.clients.dynamodb.describe_table(TableName=stack.clients.names.table)["Table"]
    return {g["IndexName"] for g in table.get("GlobalSecondaryIndexes", [])}


def test_a_missing_listing_index_is_added(stack: Stack) -> None:
    stack.clients.dynamodb.update_table(
        TableName=stack.clients.names.table,
        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": event_index.BY_TENANT}}],
    )
    assert event_index.BY_TENANT not in indexes(stack)
    ensure_table(stack.clients)
    assert event_index.BY_TENANT in indexes(stack)


def test_a_missing_directory_index_is_added(stack: Stack) -> None:
    stack.clients.dynamodb.update_table(
        TableName=stack.clients.names.table,
        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": GSI_BY_DIRECTORY}}],
    )
    assert GSI_BY_DIRECTORY not in indexes(stack)
    ensure_table(stack.clients)
    assert GSI_BY_DIRECTORY in indexes(stack)
