"""Rules, their evaluation state, their evaluations and their due runs in DynamoDB.

    PK RULE#<id>               SK RULE            the rule (version, enabled)
                               SK STATE           what the last run left: alerts, memory
                               SK EVAL#<run>      one evaluation (TTL'd)
    PK DUE#<minute>#<shard>    SK R#<due>#<id>    a due run (alerting/due.py)

A rule is written with its next due item in one transaction (conditioned on the version
read, so concurrent writers conflict instead of overwriting); the due item of the version
before is left to the scheduler, which drops due items of versions that are no longer the
rule's (alerting/due.py).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from alerting import due
from alerting.rules import Rule, RuleIn
from alerting.schedule import next_due
from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso, utcnow

ENTITY_RULE = "RULE"
EVALUATION_RETENTION_SECONDS = 7 * 86400


class RuleConflict(Exception):
    """The rule changed while this write was prepared; read it again."""


def rule_key(rule_id: str, sk: str = "RULE") -> dict[str, Any]:
    return {dynamo.PK: {"S": f"RULE#{rule_id}"}, dynamo.SK: {"S": sk}}


class RuleStore:
    def __init__(self, dynamodb: Any, table: str, shards: int) -> None:
        self._db = dynamodb
        self._table = table
        self.shards = shards

    # --- rules ----------------------------------------------------------------------------

    def get_item(self, rule_id: str) -> dict[str, Any] | None:
        resp = self._db.get_item(TableName=self._table, Key=rule_key(rule_id), ConsistentRead=True)
        return dynamo.from_item(resp["Item"]) if "Item" in resp else None

    def get(self, rule_id: str) -> Rule | None:
        item = self.get_item(rule_id)
        return None if item is None else Rule.model_validate_json(item["rule_json"])

    def put(self, rule_id: str, body: RuleIn, now: datetime | None = None) -> tuple[Rule, bool]:
        """Create or replace; (rule, created). A new version gets its own due item."""
        now = now or utcnow()
        existing = self.get_item(rule_id)
        old = Rule.model_validate_json(existing["rule_json"]) if existing else None
        rule = Rule(
            **body.model_dump(by_alias=False),
            id=rule_id,
            version=(old.version + 1) if old else 1,
            created_at=old.created_at if old else iso(now),
            updated_at=iso(now),
        )
        values = {
            dynamo.PK: f"RULE#{rule_id}",
            dynamo.SK: "RULE",
            "entity": ENTITY_RULE,
            dynamo.GSI_SORT: rule_id,
            "rule_json": rule.model_dump_json(by_alias=True),
            "version": rule.version,
            "enabled": rule.enabled,
        }
        put: dict[str, Any] = {"TableName": self._table, "Item": dynamo.to_item(values)}
        if existing:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": {"N": str(existing["version"])}}
        else:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
        ops: list[dict[str, Any]] = [{"Put": put}]
        first_due = None
        if rule.enabled:
            first_due = next_due(rule.schedule, rule.timezone, now)
            item = due.due_item(rule, first_due, self.shards)
            ops.append({"Put": {"TableName": self._table, "Item": dynamo.to_item(item)}})
        try:
            self._db.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if aws_errors.refused_items(exc):  # the version read is no longer the rule's
                raise RuleConflict(rule_id) from exc
            raise
        if first_due is not None:  # a first rule: schedulers start scanning at its minute
            scheduling = due.DueStore(self._db, self._table, "api")
            if scheduling.cursor() is None:
                scheduling.advance_cursor(None, due.bucket_of(now))
        return rule, existing is None

    def delete(self, rule_id: str) -> bool:
        """Delete the rule and its state; its due item is dropped when it comes due."""
        existing = self.get_item(rule_id)
        if existing is None:
            return False
        ops: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": rule_key(rule_id),
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": {"N": str(existing["version"])}},
                }
            },
            {"Delete": {"TableName": self._table, "Key": rule_key(rule_id, "STATE")}},
        ]
        try:
            self._db.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if aws_errors.refused_items(exc):  # the version read is no longer the rule's
                raise RuleConflict(rule_id) from exc
            raise
        return True

    def page(self, limit: int, cursor: str | None) -> tuple[list[Rule], str | None]:
        args: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": dynamo.GSI_BY_ENTITY,
            "KeyConditionExpression": "entity = :e",
            "ExpressionAttributeValues": {":e": {"S": ENTITY_RULE}},
            "Limit": limit,
        }
        start = dynamo.decode_cursor(cursor, {dynamo.PK, dynamo.SK, "entity", dynamo.GSI_SORT})
        if start:
            args["ExclusiveStartKey"] = start
        resp = self._db.query(**args)
        rules = [
            Rule.model_validate_json(dynamo.from_item(i)["rule_json"])
            for i in resp.get("Items", [])
        ]
        return rules, dynamo.encode_cursor(resp.get("LastEvaluatedKey"))

    # --- state and evaluations ---------------------------------------------------------------

    def state(self, rule_id: str) -> tuple[dict[str, Any], int, str | None]:
        """(state, version, last run) of a rule; an empty state at version 0 at first."""
        resp = self._db.get_item(
            TableName=self._table, Key=rule_key(rule_id, "STATE"), ConsistentRead=True
        )
        if "Item" not in resp:
            return {}, 0, None
        item = dynamo.from_item(resp["Item"])
        return json.loads(item["state_json"]), int(item["version"]), item.get("last_run")

    def load_run(
        self, rule_id: str, run: str
    ) -> tuple[Rule | None, tuple[dict[str, Any], int, str | None], bool]:
        """What evaluating one run needs, in one consistent BatchGetItem: the rule, its
        state (as `state`), and whether this run is recorded already."""
        keys = [rule_key(rule_id), rule_key(rule_id, "STATE"), rule_key(rule_id, f"EVAL#{run}")]
        items = dynamo.batch_get(
            self._db,
            self._table,
            keys,
            consistent=True,
            projection="SK, rule_json, state_json, version, last_run",
        )
        found = {plain[dynamo.SK]: plain for plain in map(dynamo.from_item, items)}
        rule_item, state_item = found.get("RULE"), found.get("STATE")
        rule = Rule.model_validate_json(rule_item["rule_json"]) if rule_item else None
        state: tuple[dict[str, Any], int, str | None] = ({}, 0, None)
        if state_item:
            state = (
                json.loads(state_item["state_json"]),
                int(state_item["version"]),
                state_item.get("last_run"),
            )
        return rule, state, f"EVAL#{run}" in found

    def evaluation_exists(self, rule_id: str, run: str) -> bool:
        resp = self._db.get_item(
            TableName=self._table,
            Key=rule_key(rule_id, f"EVAL#{run}"),
            ConsistentRead=True,
            ProjectionExpression="PK",
        )
        return "Item" in resp

    def record(
        self,
        rule_id: str,
        run: str,
        evaluation: dict[str, Any],
        state: dict[str, Any] | None,
        state_version: int,
    ) -> bool:
        """Write the evaluation and (if given) the new state in one transaction; False when
        this run was recorded already or another run changed the state meanwhile."""
        record = {
            dynamo.PK: f"RULE#{rule_id}",
            dynamo.SK: f"EVAL#{run}",
            "run": run,
            "evaluation_json": json.dumps(evaluation, default=str)[:200_000],
            dynamo.TTL_ATTRIBUTE: int(time.time()) + EVALUATION_RETENTION_SECONDS,
        }
        ops: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": dynamo.to_item(record),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
        ]
        if state is not None:
            item = {
                dynamo.PK: f"RULE#{rule_id}",
                dynamo.SK: "STATE",
                "state_json": json.dumps(state, default=str),
                "version": state_version + 1,
                "last_run": run,
            }
            put: dict[str, Any] = {"TableName": self._table, "Item": dynamo.to_item(item)}
            if state_version:
                put["ConditionExpression"] = "version = :v"
                put["ExpressionAttributeValues"] = {":v": {"N": str(state_version)}}
            else:
                put["ConditionExpression"] = "attribute_not_exists(PK)"
            ops.append({"Put": put})
        try:
            self._db.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if aws_errors.refused_items(exc):
                return False
            raise
        return True

    def evaluations(
        self, rule_id: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        args: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :e)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"RULE#{rule_id}"},
                ":e": {"S": "EVAL#"},
            },
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = dynamo.decode_cursor(cursor, {dynamo.PK, dynamo.SK})
        if start:
            args["ExclusiveStartKey"] = start
        resp = self._db.query(**args)
        items = [json.loads(dynamo.from_item(i)["evaluation_json"]) for i in resp.get("Items", [])]
        return items, dynamo.encode_cursor(resp.get("LastEvaluatedKey"))
