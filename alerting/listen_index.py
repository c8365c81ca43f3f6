"""The index of listening rules: one partition the listener reads whole, instead of paging
through every rule.

    PK LISTENING   SK <rule id>   data source, channel, lane, version

Written in the rule's own transaction (`RuleStore.put` and `delete`), so it never
disagrees with the rules: a rule that listens (enabled, an SQL source, `listen` set) has
its entry put; a rule that listened before and no longer does, or is deleted, has it
deleted. A rule that never listened costs nothing extra.
"""

from __future__ import annotations

from typing import Any

from alerting.rules import Rule
from core.aws import dynamo

LISTENING_PK = "LISTENING"


def _listens(rule: Rule | None) -> bool:
    return bool(rule and rule.enabled and rule.listen and rule.source.kind == "sql")


def index_ops(table: str, old: Rule | None, new: Rule | None) -> list[dict[str, Any]]:
    """The transaction items that keep the index right when `old` becomes `new` (None: no
    rule)."""
    if new is not None and _listens(new):
        assert new.listen is not None and new.source.kind == "sql"
        entry = {
            dynamo.PK: LISTENING_PK,
            dynamo.SK: new.id,
            "datasource": new.source.datasource,
            "channel": new.listen,
            "lane": "critical" if new.severity == "critical" else "normal",
            "version": new.version,
        }
        return [{"Put": {"TableName": table, "Item": dynamo.to_item(entry)}}]
    if old is not None and old.listen:
        key = {dynamo.PK: {"S": LISTENING_PK}, dynamo.SK: {"S": old.id}}
        return [{"Delete": {"TableName": table, "Key": key}}]
    return []


def listening(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    """Every entry of the index (page by page)."""
    args: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": LISTENING_PK}},
    }
    found: list[dict[str, Any]] = []
    while True:
        resp = dynamodb.query(**args)
        found += [dynamo.from_item(item) for item in resp.get("Items", [])]
        if "LastEvaluatedKey" not in resp:
            return found
        args["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
