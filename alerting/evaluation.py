"""One evaluation of a rule: source → condition → pending/firing/resolved → events.

Pure apart from running the source, so `POST /rules/{id}/test` shows exactly what a
scheduled run would send. Firing keys send a `trigger` on every evaluation while they fire,
as Prometheus re-sends firing alerts: the alert gate (Part 1) turns those into one
notification, then a reminder per repeat interval. A key that stops firing sends a
`resolve`. A key that turns true waits `for` before it fires (pending); one that turns
false while pending resolves nothing, since it never fired.

A source error keeps the previous state (Grafana's "keep last state") unless the
condition is `unreachable`, whose whole point is to fire on it.

Event ids are derived from (rule, run, key, action): a redelivered evaluation message
publishes the same events, which the event store already holds, so nothing doubles.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from alerting.conditions import evaluate
from alerting.rules import STATEFUL, Changed, HttpSource, Rule
from alerting.sources import DataSources, SourceResult, run_http
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, iso

RULE_EVENT_NAMESPACE = uuid.UUID("0c8a3d52-8d1e-4d39-a2b7-5a7a4f3f1e11")
VALUES_SHOWN = 10

Outcome = Literal["ok", "pending", "firing", "error"]


@dataclass
class Evaluation:
    outcome: Outcome
    summary: str
    duration_s: float
    values: list[dict[str, Any]]
    error: str | None
    state: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    truncated: bool = False


def run_source(rule: Rule, datasources: DataSources, http_timeout: float) -> SourceResult:
    if isinstance(rule.source, HttpSource):
        return run_http(rule.source, http_timeout)
    return datasources.run(rule.source)


def evaluate_rule(
    rule: Rule,
    result: SourceResult,
    state: dict[str, Any],
    now: datetime,
    run_id: str,
) -> Evaluation:
    kind = rule.condition.kind
    alerts: dict[str, dict[str, Any]] = dict(state.get("alerts", {}))
    memory: dict[str, Any] = dict(state.get("memory", {}))
    error = result.error
    if error and kind != "unreachable":
        return Evaluation("error", error, result.duration_s, result.rows, error, state)
    try:
        verdict = evaluate(rule.condition, result, memory, now)
    except ValueError as exc:
        message = f"condition: {exc}"
        return Evaluation("error", message, result.duration_s, result.rows, message, state)
    triggers: list[tuple[str, list[dict[str, Any]]]] = []
    resolves: list[tuple[str, dict[str, Any]]] = []
    pending = 0
    if kind in STATEFUL:
        hold = timedelta(seconds=rule.for_seconds)
        for key, rows in verdict.active.items():
            entry = alerts.get(key) or {"since": iso(now), "firing": False}
            if not entry["firing"] and now - datetime.fromisoformat(entry["since"]) >= hold:
                entry["firing"] = True
            entry["row"] = _first_row(rows)
            alerts[key] = entry
            if entry["firing"]:
                triggers.append((key, rows))
            else:
                pending += 1
        for key in [k for k in alerts if k not in verdict.active]:
            gone = alerts.pop(key)
            if gone["firing"]:
                resolves.append((key, gone.get("row", {})))
    else:
        triggers = list(verdict.edges)
        if isinstance(rule.condition, Changed) and verdict.edges and memory.get("hash"):
            resolves.append((str(memory["hash"]), dict(memory.get("row", {}))))
    events = [
        rule_event(rule, run_id, now, key, "trigger", rows, verdict.summary)
        for key, rows in triggers
    ]
    events += [
        rule_event(rule, run_id, now, key, "resolve", [row], "resolved") for key, row in resolves
    ]
    outcome: Outcome = "firing" if triggers else "pending" if pending else "ok"
    new_state = {"alerts": alerts, "memory": verdict.memory or memory}
    return Evaluation(
        outcome,
        verdict.summary,
        result.duration_s,
        result.rows[:VALUES_SHOWN],
        error,
        new_state,
        [e for group in events for e in group],
        result.truncated,
    )


def _first_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(rows[0]) if rows else {}


def dedupe_key(rule: Rule, key: str) -> str:
    return f"rule:{rule.id}" + (f":{key}" if key else "")


def rule_event(
    rule: Rule,
    run_id: str,
    now: datetime,
    key: str,
    action: Literal["trigger", "resolve"],
    rows: list[dict[str, Any]],
    summary: str,
    *,
    test: bool = False,
) -> list[Event]:
    """The events of one alert key: one per user, or one for the topic or inline list."""
    spec = EVENT_TYPES[rule.event_type]
    row = _first_row(rows)
    data: dict[str, Any] = {k: v for k, v in row.items() if isinstance(v, str | int | float)}
    data.update(rule.data)
    data.update(
        {
            "rule": rule.name,
            "rule_id": rule.id,
            "summary": summary,
            "severity": rule.severity,
            "values": [_row_text(r) for r in rows[:VALUES_SHOWN]],
            "evaluated_at": iso(now),
        }
    )
    if test:
        data["test"] = True
    base = dedupe_key(rule, key)
    recipients = rule.recipients
    targets: list[tuple[str, dict[str, Any]]]
    if recipients.users:
        targets = [(f"{base}@{user}", {"user_id": user}) for user in recipients.users]
    elif recipients.topic:
        targets = [(base, {"topic": recipients.topic})]
    else:
        assert recipients.to is not None
        targets = [(base, {"to": recipients.to.plain()})]
    events = []
    for dkey, target in targets:
        name = f"{rule.id}|{run_id}|{dkey}|{action}"
        events.append(
            Event(
                event_id=str(uuid.uuid5(RULE_EVENT_NAMESPACE, name)),
                type=rule.event_type,
                category=spec.category,
                priority=rule.priority,
                data=data,
                created_at=iso(now),
                dedupe_key=None if test else dkey,
                action=None if test else action,
                repeat_interval_seconds=None if test else rule.repeat_interval_seconds,
                notify_resolved=None if test else rule.notify_resolved,
                **target,
            )
        )
    return events


def _row_text(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())[:300]
