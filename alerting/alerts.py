"""Alerts: what events with a `dedupe_key` open, count, remind about and resolve.

    first trigger of (type, key) ─▶ OPEN alert, notify
    trigger while OPEN           ─▶ counted; notify once repeat_interval has passed since
                                    the last notification (a reminder), unless acked/silenced
    resolve while OPEN           ─▶ RESOLVED; notify if notify_resolved (and it ever notified)
    trigger after RESOLVED       ─▶ a new alert (the next sequence number)

Event time rules over arrival order, as Alertmanager compares start and end times: queues
and retries reorder events routinely. Each alert keeps the time (`created_at`) of the
newest trigger it counted, and each key the time of the newest resolve it saw:

    resolve older than the open alert's newest trigger ─▶ nothing (the trigger is newer news)
    trigger older than the key's newest resolve        ─▶ nothing (it was resolved since)
    resolve with nothing open                          ─▶ remembered: a late, older trigger
                                                          opens nothing

A resolve that finds no alert at all is kept as a sequence-0 item (no entity, no status:
never listed), so the next alert is still number 1.

Layout, one partition per (type, key) so every decision reads and writes one partition:

    PK ALERT#<hash of type and key>   SK A#<seq, 8 digits>   an alert (newest sorts last)
                                      SK E#<event id>        the decision taken for an event

Every decision is one TransactWriteItems: put the event's decision item (only if absent)
and change the alert under a condition on what was read (its state, its last reminder).
Two concurrent triggers cannot both notify: one transaction wins, the other is cancelled
and decides again from the new state. A redelivered event finds its decision item and gets
the same answer, so a router retry notifies exactly as the first try would have.

Alerts are listed through the table's existing GSIs: `entity = ALERT` (by_entity, newest
first) and `status = ALERT_OPEN | ALERT_RESOLVED` (by_status).

An alert keeps the last `NOTIFYING_EVENTS_KEPT` events that notified for it (`notifications`,
oldest first) and how many notified in all (`notifying_events`), so reminders cannot grow
the item towards DynamoDB's 400 KB limit. The list is rewritten under the condition that
guards the notification (the `last_notified_at` that was read), so no concurrent entry is
lost. An alert written before the count existed counts the entries it holds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import ClientError

from alerting.alert_ids import (
    alert_id_of,
    alert_pk,
    alert_sk,
    key_hash,
    parse_alert_id,
    tenant_of,
)
from alerting.event_order import event_time, newer, older
from core.aws import dynamo
from core.aws import errors as aws_errors
from core.catalogue.models import Event, iso, utcnow

ENTITY_ALERT = "ALERT"
STATUS = {"open": "ALERT_OPEN", "resolved": "ALERT_RESOLVED"}
DECISION_ATTEMPTS = 8
# Notifying events an alert item keeps (the newest); older ones are only counted.
NOTIFYING_EVENTS_KEPT = 50

Kind = Literal["open", "remind", "suppress", "resolve", "ignore"]


class AlertBusy(Exception):
    """Concurrent writers kept cancelling this decision; the router retries the message."""


@dataclass(frozen=True)
class Decision:
    kind: Kind
    notify: bool
    alert_id: str | None
    reason: str


@dataclass(frozen=True)
class AlertPolicy:
    """What governs an alert's notifications; fixed when it opens."""

    repeat_interval_seconds: int
    notify_resolved: bool


def notifying_events(item: dict[str, Any]) -> int:
    """How many events notified for the alert in all (an older item: those it lists)."""
    kept = item.get("notifications") or []
    return int(item.get("notifying_events", len(kept)))


def _with_notification(
    current: dict[str, Any], entry: dict[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    """The alert's kept list with `entry` appended, cut to the newest kept, and the new
    count of notifying events."""
    kept = [*(current.get("notifications") or []), entry]
    return kept[-NOTIFYING_EVENTS_KEPT:], notifying_events(current) + 1


class AlertStore:
    def __init__(self, dynamodb: Any, table: str, retention_days: int = 30) -> None:
        self._db = dynamodb
        self._table = table
        self._retention = retention_days * 86400

    # --- deciding ------------------------------------------------------------------------

    def decide(
        self, event: Event, policy: AlertPolicy, *, silenced: bool, now: datetime | None = None
    ) -> Decision:
        """Whether this event notifies; the same answer every time it is asked again."""
        assert event.dedupe_key is not None
        khash = key_hash(tenant_of(event), event.type, event.dedupe_key)
        for _ in range(DECISION_ATTEMPTS):
            at = now or utcnow()
            current = self._current(khash)
            decision, write = self._plan(event, khash, current, policy, silenced, at)
            marker = {
                "Put": {
                    "TableName": self._table,
                    "Item": dynamo.to_item(
                        {
                            dynamo.PK: alert_pk(khash),
                            dynamo.SK: f"E#{event.event_id}",
                            "kind": decision.kind,
                            "notify": decision.notify,
                            "alert_id": decision.alert_id,
                            "reason": decision.reason,
                            "at": iso(at),
                            dynamo.TTL_ATTRIBUTE: int(time.time()) + self._retention,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(PK)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            try:
                self._db.transact_write_items(TransactItems=[marker, *write])
                return decision
            except ClientError as exc:
                if aws_errors.error_code(exc) != aws_errors.CANCELLED:
                    raise
                refused = aws_errors.refused_items(exc)
                if 0 in refused:  # this event's decision is taken already
                    stored = refused[0] or self._marker(khash, event.event_id)
                    if stored:
                        return _decision_from(dynamo.from_item(stored))
                # the alert changed under us: decide again from what is there now
        raise AlertBusy(f"alert decision for event {event.event_id} kept conflicting")

    def _plan(
        self,
        event: Event,
        khash: str,
        current: dict[str, Any] | None,
        policy: AlertPolicy,
        silenced: bool,
        at: datetime,
    ) -> tuple[Decision, list[dict[str, Any]]]:
        now = iso(at)
        is_open = current is not None and current["state"] == "open"
        key = None
        if current is not None:
            key = {dynamo.PK: {"S": alert_pk(khash)}, dynamo.SK: {"S": alert_sk(current["seq"])}}
        if event.action == "resolve":
            if not is_open or current is None or key is None:
                why = "resolve of no open alert"
                return Decision("ignore", False, None, why), self._remember_resolve(
                    khash, current, event
                )
            aid = current["alert_id"]
            if older(event, current.get("trigger_event_at")):
                why = f"resolve older than alert {aid}'s last trigger: nothing resolved"
                return Decision("ignore", False, aid, why), []
            notify = bool(
                current.get("notify_resolved") and current.get("last_notified_at") and not silenced
            )
            why = "resolved" + ("" if notify else " (no resolved notification)")
            sets = [
                "#st = :resolved",
                "#s = :status",
                "resolved_at = :now",
                "last_seen = :now",
                "resolved_by = :eid",
                "resolved_event_at = :et",
                f"{dynamo.TTL_ATTRIBUTE} = :ttl",
            ]
            values = {
                ":et": event.created_at,
                ":resolved": "resolved",
                ":status": STATUS["resolved"],
                ":now": now,
                ":eid": event.event_id,
                ":ttl": int(time.time()) + self._retention,
                ":open": "open",
            }
            condition = "#st = :open"
            if notify:  # the list as read, unless a reminder changed it (then decide again)
                entry = {"event_id": event.event_id, "kind": "resolve", "at": now}
                values[":n"], values[":total"] = _with_notification(current, entry)
                sets += ["notifications = :n", "notifying_events = :total"]
                condition += " AND last_notified_at = :last"
                values[":last"] = current["last_notified_at"]
            update = self._update(key, sets, values, condition)
            return Decision("resolve", notify, aid, f"alert {aid} {why}"), [update]
        if not is_open:
            if current is not None and older(event, current.get("resolved_event_at")):
                why = "trigger older than the last resolve of its key: nothing opened"
                return Decision("ignore", False, None, why), []
            seq = (current["seq"] + 1) if current else 1
            aid = alert_id_of(khash, seq)
            notify = not silenced
            item = {
                dynamo.PK: alert_pk(khash),
                dynamo.SK: alert_sk(seq),
                "entity": ENTITY_ALERT,
                "status": STATUS["open"],
                dynamo.GSI_SORT: f"{now}#{aid}",
                "alert_id": aid,
                "seq": seq,
                "type": event.type,
                "dedupe_key": event.dedupe_key,
                "tenant": tenant_of(event),
                "priority": event.priority.value,
                "state": "open",
                "first_seen": now,
                "last_seen": now,
                "count": 1,
                "opened_by": event.event_id,
                "last_event_id": event.event_id,
                "trigger_event_at": event.created_at,
                "last_notified_at": now if notify else None,
                "repeat_interval_seconds": policy.repeat_interval_seconds,
                "notify_resolved": policy.notify_resolved,
                "acked": False,
                "data_json": _data_json(event),
                "notifications": (
                    [{"event_id": event.event_id, "kind": "open", "at": now}] if notify else []
                ),
                "notifying_events": 1 if notify else 0,
            }
            put = {
                "Put": {
                    "TableName": self._table,
                    "Item": dynamo.to_item(item),
                    "ConditionExpression": "attribute_not_exists(PK)",
                }
            }
            why = f"alert {aid} opened" + (" (silenced)" if silenced else "")
            return Decision("open", notify, aid, why), [put]
        assert current is not None and key is not None
        aid = current["alert_id"]
        last = current.get("last_notified_at")
        interval = timedelta(seconds=int(current.get("repeat_interval_seconds", 0)))
        due = last is None or at - datetime.fromisoformat(last) >= interval
        values = {":now": now, ":eid": event.event_id, ":one": 1, ":open": "open"}
        sets = ["last_seen = :now", "last_event_id = :eid"]
        if not older(event, current.get("trigger_event_at")):
            sets.append("trigger_event_at = :et")
            values[":et"] = event.created_at
        if current.get("acked") or silenced or not due:
            why = "acknowledged" if current.get("acked") else "silenced" if silenced else "open"
            update = self._update(key, sets, values, "#st = :open", add_count=True)
            reason = f"alert {aid} {why}: trigger counted, no notification"
            return Decision("suppress", False, aid, reason), [update]
        # the list as read: the condition on last_notified_at below keeps it current
        entry = {"event_id": event.event_id, "kind": "remind", "at": now}
        values[":n"], values[":total"] = _with_notification(current, entry)
        sets += ["last_notified_at = :now", "notifications = :n", "notifying_events = :total"]
        if last is None:
            cond = "#st = :open AND attribute_not_exists(last_notified_at)"
        else:
            cond = "#st = :open AND last_notified_at = :last"
            values[":last"] = last
        update = self._update(key, sets, values, cond, add_count=True)
        return Decision("remind", True, aid, f"alert {aid} still open: reminder"), [update]

    def _remember_resolve(
        self, khash: str, current: dict[str, Any] | None, event: Event
    ) -> list[dict[str, Any]]:
        """Keep the newest resolve time of a key with nothing open, so a trigger older than
        it, arriving late, opens nothing."""
        if event_time(event) is None:
            return []
        if current is None:
            item = {
                dynamo.PK: alert_pk(khash),
                dynamo.SK: alert_sk(0),
                "seq": 0,
                "state": "resolved",
                "resolved_event_at": event.created_at,
                dynamo.TTL_ATTRIBUTE: int(time.time()) + self._retention,
            }
            put = {
                "TableName": self._table,
                "Item": dynamo.to_item(item),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
            return [{"Put": put}]
        known = current.get("resolved_event_at")
        if known is not None and not newer(event, known):
            return []  # it knows of a resolve as new already
        key = {dynamo.PK: {"S": alert_pk(khash)}, dynamo.SK: {"S": alert_sk(current["seq"])}}
        values: dict[str, Any] = {":et": event.created_at, ":resolved": "resolved"}
        condition = "#st = :resolved"
        if current.get("resolved_event_at") is None:
            condition += " AND attribute_not_exists(resolved_event_at)"
        else:
            condition += " AND resolved_event_at = :was"
            values[":was"] = current["resolved_event_at"]
        return [self._update(key, ["resolved_event_at = :et"], values, condition)]

    def _update(
        self,
        key: dict[str, Any],
        sets: list[str],
        values: dict[str, Any],
        condition: str,
        *,
        add_count: bool = False,
    ) -> dict[str, Any]:
        expression = "SET " + ", ".join(sets) + (" ADD #c :one" if add_count else "")
        names = {"#st": "state"}
        if "#s" in expression:
            names["#s"] = "status"
        if add_count:
            names["#c"] = "count"
        return {
            "Update": {
                "TableName": self._table,
                "Key": key,
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {k: dynamo.to_value(v) for k, v in values.items()},
            }
        }

    def _current(self, khash: str) -> dict[str, Any] | None:
        resp = self._db.query(
            TableName=self._table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :a)",
            ExpressionAttributeValues={":pk": {"S": alert_pk(khash)}, ":a": {"S": "A#"}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = resp.get("Items", [])
        return dynamo.from_item(items[0]) if items else None

    def _marker(self, khash: str, event_id: str) -> dict[str, Any] | None:
        resp = self._db.get_item(
            TableName=self._table,
            Key={dynamo.PK: {"S": alert_pk(khash)}, dynamo.SK: {"S": f"E#{event_id}"}},
            ConsistentRead=True,
        )
        item = resp.get("Item")
        return dict(item) if item else None

    # --- reading and acknowledging ------------------------------------------------------

    def get(self, alert_id: str) -> dict[str, Any] | None:
        parsed = parse_alert_id(alert_id)
        if parsed is None:
            return None
        resp = self._db.get_item(
            TableName=self._table,
            Key={dynamo.PK: {"S": alert_pk(parsed[0])}, dynamo.SK: {"S": alert_sk(parsed[1])}},
            ConsistentRead=True,
        )
        return dynamo.from_item(resp["Item"]) if "Item" in resp else None

    def list(
        self, state: str | None, limit: int, cursor: str | None, tenant: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; `state` picks the by_status index, else every alert (by_entity);
        `tenant` keeps that tenant's only (a page may then hold fewer than `limit`)."""
        if state is None:
            index, attr, value = dynamo.GSI_BY_ENTITY, "entity", ENTITY_ALERT
        else:
            index, attr, value = dynamo.GSI_BY_STATUS, "status", STATUS[state]
        args: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#p = :v",
            "ExpressionAttributeNames": {"#p": attr},
            "ExpressionAttributeValues": {":v": {"S": value}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if tenant is not None:
            args["FilterExpression"] = "tenant = :t"
            args["ExpressionAttributeValues"][":t"] = {"S": tenant}
        start = dynamo.decode_cursor(cursor, {dynamo.PK, dynamo.SK, attr, dynamo.GSI_SORT})
        if start:
            args["ExclusiveStartKey"] = start
        resp = self._db.query(**args)
        items = [dynamo.from_item(i) for i in resp.get("Items", [])]
        return items, dynamo.encode_cursor(resp.get("LastEvaluatedKey"))

    def ack(self, alert_id: str, by: str | None) -> dict[str, Any] | None:
        """Acknowledge an open alert: no more reminders. None when it is not open."""
        parsed = parse_alert_id(alert_id)
        if parsed is None:
            return None
        try:
            resp = self._db.update_item(
                TableName=self._table,
                Key={
                    dynamo.PK: {"S": alert_pk(parsed[0])},
                    dynamo.SK: {"S": alert_sk(parsed[1])},
                },
                UpdateExpression="SET acked = :t, acked_at = :now, acked_by = :by",
                ConditionExpression="#st = :open",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={
                    ":t": {"BOOL": True},
                    ":now": {"S": iso(utcnow())},
                    ":by": {"S": by or "api"},
                    ":open": {"S": "open"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if aws_errors.is_refusal(exc):
                return None
            raise
        return dynamo.from_item(resp["Attributes"])


def _decision_from(stored: dict[str, Any]) -> Decision:
    return Decision(
        kind=stored["kind"],
        notify=bool(stored["notify"]),
        alert_id=stored.get("alert_id"),
        reason=str(stored.get("reason", "")),
    )


def _data_json(event: Event) -> str:
    return json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)[:4096]
