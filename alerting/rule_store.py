"""Rules, their evaluation state, their evaluations and their due runs in DynamoDB.

    PK RULE#<id>               SK RULE            the rule (version, enabled)
                               SK GONE            the last version of a deleted rule
                               SK STATE           what the last run left: alerts, memory
                               SK EVAL#<run>      one evaluation (TTL'd)
                               SK OUT#<run>#<n>   a run's events not yet published
    PK DUE#<minute>#<shard>    SK R#<due>#<id>    a due run (alerting/due.py)
    PK LISTENING               SK <id>            a listening rule (alerting/listen_index.py)

A rule is written with its next due item in one transaction (conditioned on the version
read, so concurrent writers conflict instead of overwriting); the due item of the version
before is left to the scheduler, which drops due items of versions that are no longer the
rule's (alerting/due.py). Versions never repeat: a deleted rule leaves its last version
behind (`GONE`), and a rule put again under its id continues from there, so a due item of
the deleted rule never matches the new one.

A run's evaluation, the rule's new state and the run's events to publish (`OUT#`, in
chunks) are one transaction; the events are published after it commits and their chunks
then deleted. A run that finds its evaluation recorded publishes what its chunks still
hold, unless a later run has been recorded since (then they are stale and dropped).
Evaluations and state are kept under DynamoDB's 400 KB item limit (`bounded_json`).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from alerting import due, listen_index
from alerting.rules import Rule, RuleIn
from alerting.schedule import next_due
from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import iso, utcnow

ENTITY_RULE = "RULE"
EVALUATION_RETENTION_SECONDS = 7 * 86400
EVALUATION_CHARS_MAX = 200_000
STATE_CHARS_MAX = 300_000
OUTBOX_CHUNK_CHARS = 300_000
OUTBOX_CHUNKS_MAX = 12  # with the evaluation and the state: under the 4 MB of a transaction


class StateTooLarge(ValueError):
    """The rule's state would not fit in one item."""


def bounded_json(evaluation: dict[str, Any], limit: int = EVALUATION_CHARS_MAX) -> str:
    """The evaluation as JSON of at most `limit` characters, always valid: rows shown and
    events listed are dropped first (their counts kept), then long texts cut."""
    text = json.dumps(evaluation, default=str)
    if len(text) <= limit:
        return text
    trimmed = dict(evaluation)
    for name in ("values", "events"):
        items = trimmed.get(name)
        if isinstance(items, list) and items:
            trimmed[f"{name}_total"] = len(items)
            trimmed[name] = []
            text = json.dumps(trimmed, default=str)
            if len(text) <= limit:
                return text
    for name in ("summary", "error"):
        if isinstance(trimmed.get(name), str):
            trimmed[name] = trimmed[name][:1000]
    text = json.dumps(trimmed, default=str)
    if len(text) <= limit:
        return text
    keep = ("rule_id", "run", "evaluated_at", "outcome", "summary", "error")
    return json.dumps({k: trimmed.get(k) for k in keep} | {"cut": True}, default=str)[:limit]


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
        before = old.version if old else self._gone_version(rule_id)
        rule = Rule(
            **body.model_dump(by_alias=False),
            id=rule_id,
            version=before + 1,
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
        ops: list[dict[str, Any]] = [{"Put": put}, *listen_index.index_ops(self._table, old, rule)]
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

    def _gone_version(self, rule_id: str) -> int:
        """The last version of a deleted rule of this id, else 0."""
        resp = self._db.get_item(
            TableName=self._table, Key=rule_key(rule_id, "GONE"), ConsistentRead=True
        )
        return int(resp["Item"]["version"]["N"]) if "Item" in resp else 0

    def delete(self, rule_id: str) -> bool:
        """Delete the rule and its state, leaving its version behind; its due item is
        dropped when it comes due."""
        existing = self.get_item(rule_id)
        if existing is None:
            return False
        old = Rule.model_validate_json(existing["rule_json"])
        ops: list[dict[str, Any]] = [
            *listen_index.index_ops(self._table, old, None),
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": rule_key(rule_id),
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": {"N": str(existing["version"])}},
                }
            },
            {"Delete": {"TableName": self._table, "Key": rule_key(rule_id, "STATE")}},
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        **rule_key(rule_id, "GONE"),
                        "version": {"N": str(existing["version"])},
                    },
                }
            },
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
        outbox: list[dict[str, Any]] | None = None,
    ) -> bool:
        """Write the evaluation, the new state (if given) and the run's events to publish
        in one transaction; False when this run was recorded already or another run
        changed the state meanwhile. Raises StateTooLarge for a state past one item."""
        expires = int(time.time()) + EVALUATION_RETENTION_SECONDS
        record = {
            dynamo.PK: f"RULE#{rule_id}",
            dynamo.SK: f"EVAL#{run}",
            "run": run,
            "evaluation_json": bounded_json(evaluation),
            dynamo.TTL_ATTRIBUTE: expires,
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
            state_json = json.dumps(state, default=str)
            if len(state_json) > STATE_CHARS_MAX:
                raise StateTooLarge(f"the rule's state is {len(state_json)} characters")
            item = {
                dynamo.PK: f"RULE#{rule_id}",
                dynamo.SK: "STATE",
                "state_json": state_json,
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
        for index, chunk in enumerate(_chunks(outbox or [])):
            out = {
                dynamo.PK: f"RULE#{rule_id}",
                dynamo.SK: f"OUT#{run}#{index:03d}",
                "sends_json": chunk,
                dynamo.TTL_ATTRIBUTE: expires,
            }
            ops.append({"Put": {"TableName": self._table, "Item": dynamo.to_item(out)}})
        try:
            self._db.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if aws_errors.refused_items(exc):
                return False
            raise
        return True

    def outbox(self, rule_id: str, run: str) -> tuple[list[dict[str, Any]], list[str]]:
        """The run's events not yet published (as stored), and the chunks' sort keys."""
        resp = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :o)",
            ExpressionAttributeValues={
                ":pk": {"S": f"RULE#{rule_id}"},
                ":o": {"S": f"OUT#{run}#"},
            },
            ConsistentRead=True,
        )
        sends: list[dict[str, Any]] = []
        keys: list[str] = []
        for plain in map(dynamo.from_item, resp.get("Items", [])):
            sends += json.loads(plain["sends_json"])
            keys.append(plain[dynamo.SK])
        return sends, keys

    def clear_outbox(self, rule_id: str, chunk_keys: list[str]) -> None:
        for sk in chunk_keys:
            self._db.delete_item(TableName=self._table, Key=rule_key(rule_id, sk))

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
        items = [_evaluation(dynamo.from_item(i)) for i in resp.get("Items", [])]
        return items, dynamo.encode_cursor(resp.get("LastEvaluatedKey"))


def _evaluation(item: dict[str, Any]) -> dict[str, Any]:
    """A stored evaluation; one cut short by an older version's plain cut is shown as such."""
    try:
        value = json.loads(item["evaluation_json"])
    except ValueError:
        return {"run": item.get("run"), "outcome": "unknown", "cut": True}
    return value if isinstance(value, dict) else {"run": item.get("run"), "cut": True}


def _chunks(sends: list[dict[str, Any]]) -> list[str]:
    """The sends as JSON lists of at most OUTBOX_CHUNK_CHARS characters each."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for send in sends:
        text = json.dumps(send, default=str)
        if current and size + len(text) > OUTBOX_CHUNK_CHARS:
            chunks.append("[" + ",".join(current) + "]")
            current, size = [], 0
        current.append(text)
        size += len(text) + 1
    if current:
        chunks.append("[" + ",".join(current) + "]")
    if len(chunks) > OUTBOX_CHUNKS_MAX:
        raise StateTooLarge(f"the run's events take {len(chunks)} items")
    return chunks
