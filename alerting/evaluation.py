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

A result cut by the row cap (`truncated`) says nothing about the rows past the cap: a key
absent from it is not resolved, only one whose rows came back and no longer compare true
(and the rule's single key "" is kept as it was when nothing in the rows fires it).

State stays small enough for one item: at most ALERT_KEYS_MAX alert keys per rule (those
already firing first, then in key order; the summary says how many were left out), and
rows are kept with their long values cut (`bounded_row`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from alerting.conditions import evaluate
from alerting.report import report_table
from alerting.rules import STATEFUL, Changed, HttpSource, Report, Rule
from alerting.sources import DataSources, SourceResult, run_http
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, iso

RULE_EVENT_NAMESPACE = uuid.UUID("0c8a3d52-8d1e-4d39-a2b7-5a7a4f3f1e11")
VALUES_SHOWN = 10
ALERT_KEYS_MAX = 100
VALUE_CHARS_MAX = 256  # a longer string value of a row is cut to this (in state and events)
ROW_COLUMNS_MAX = 32
ROW_CHARS_MAX = 1024  # a row's values together, about

Outcome = Literal["ok", "pending", "firing", "error"]
INITIAL_MEMORY: dict[str, dict[str, Any]] = {"new_rows": {"digests": []}, "changed": {"hash": ""}}
"""`notify_initial`: what an edge kind's first run compares with, as if the previous run had
returned nothing (an empty hash resolves nothing)."""


@dataclass(frozen=True)
class Send:
    """One alert key's trigger or resolve: what its events are made of."""

    key: str
    action: Literal["trigger", "resolve"]
    rows: list[dict[str, Any]]
    summary: str
    report: dict[str, Any] | None = None
    """A report rule's table (alerting/report.py), which its event carries."""

    def plain(self) -> dict[str, Any]:
        plain = {"key": self.key, "action": self.action, "rows": self.rows, "summary": self.summary}
        return plain if self.report is None else {**plain, "report": self.report}

    @classmethod
    def from_plain(cls, value: dict[str, Any]) -> Send:
        return cls(
            value["key"],
            value["action"],
            list(value["rows"]),
            value["summary"],
            value.get("report"),
        )


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
    sends: list[Send] = field(default_factory=list)


def bounded_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with at most ROW_COLUMNS_MAX columns and its text values cut, about
    ROW_CHARS_MAX characters in all."""
    columns = list(row.items())[:ROW_COLUMNS_MAX]
    each = max(16, min(VALUE_CHARS_MAX, ROW_CHARS_MAX // max(1, len(columns))))
    kept: dict[str, Any] = {}
    for column, value in columns:
        if not (value is None or isinstance(value, bool | int | float | str)):
            value = str(value)
        if isinstance(value, str) and len(value) > each:
            value = value[:each] + "…"
        kept[str(column)[:64]] = value
    return kept


def bounded_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [bounded_row(r) for r in rows[:VALUES_SHOWN]]


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
    if rule.notify_initial and not memory and kind in INITIAL_MEMORY and result.rows:
        # The first run reports what it finds: compared with an empty result, not taken as
        # the baseline (a first run with no rows still only sets the baseline).
        memory = dict(INITIAL_MEMORY[kind])
    try:
        verdict = evaluate(rule.condition, result, memory, now)
    except ValueError as exc:
        message = f"condition: {exc}"
        return Evaluation("error", message, result.duration_s, result.rows, message, state)
    triggers: list[tuple[str, list[dict[str, Any]]]] = []
    resolves: list[tuple[str, dict[str, Any]]] = []
    pending = 0
    summary = verdict.summary
    if kind in STATEFUL:
        hold = timedelta(seconds=rule.for_seconds)
        active = verdict.active
        if len(active) > ALERT_KEYS_MAX:
            ranked = sorted(active, key=lambda k: (not alerts.get(k, {}).get("firing"), k))
            active = {k: active[k] for k in ranked[:ALERT_KEYS_MAX]}
            summary += f" ({len(verdict.active) - ALERT_KEYS_MAX} key(s) past the limit ignored)"
        for key, rows in active.items():
            entry = alerts.get(key) or {"since": iso(now), "firing": False}
            if not entry["firing"] and now - datetime.fromisoformat(entry["since"]) >= hold:
                entry["firing"] = True
            entry["row"] = bounded_row(_first_row(rows))
            alerts[key] = entry
            if entry["firing"]:
                triggers.append((key, rows))
            else:
                pending += 1
        for key in [k for k in alerts if k not in active]:
            if key in verdict.active:
                continue  # true, but past ALERT_KEYS_MAX: neither tracked nor resolved
            if result.truncated and verdict.seen is not None and key not in verdict.seen:
                continue  # its rows may be past the row cap: unknown, not resolved
            gone = alerts.pop(key)
            if gone["firing"]:
                resolves.append((key, gone.get("row", {})))
    else:
        triggers = list(verdict.edges)
        if isinstance(rule.condition, Changed) and verdict.edges and memory.get("hash"):
            resolves.append((str(memory["hash"]), dict(memory.get("row", {}))))
    sends = [Send(key, "trigger", bounded_rows(rows), summary) for key, rows in triggers]
    sends += [Send(key, "resolve", [bounded_row(row)], "resolved") for key, row in resolves]
    if isinstance(rule.condition, Report):
        table = report_table(rule.name, result.rows, source_truncated=result.truncated, now=now)
        sends = [Send(key, "trigger", bounded_rows(rows), summary, table) for key, rows in triggers]
    outcome: Outcome = "firing" if triggers else "pending" if pending else "ok"
    new_state = {"alerts": alerts, "memory": verdict.memory or memory}
    return Evaluation(
        outcome,
        summary,
        result.duration_s,
        bounded_rows(result.rows),
        error,
        new_state,
        events_of(rule, run_id, now, sends),
        result.truncated,
        sends,
    )


def events_of(rule: Rule, run_id: str, now: datetime, sends: list[Send]) -> list[Event]:
    return [
        event
        for send in sends
        for event in rule_event(
            rule, run_id, now, send.key, send.action, send.rows, send.summary, report=send.report
        )
    ]


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
    report: dict[str, Any] | None = None,
) -> list[Event]:
    """The events of one alert key: one per user, or one for the topic or inline list.
    A report rule's carry its table (`report`) instead of the first row and `values`, and
    no alert fields: each run's report is an event of its own, never deduplicated."""
    spec = EVENT_TYPES[rule.event_type]
    row = _first_row(rows)
    reporting = isinstance(rule.condition, Report)
    if reporting and report is None:  # a test send: the rows it was given
        report = report_table(rule.name, rows, source_truncated=False, now=now)
    data: dict[str, Any] = {
        k: v for k, v in row.items() if isinstance(v, str | int | float) and not reporting
    }
    data.update(rule.data)
    data.update(
        {
            "rule": rule.name,
            "rule_id": rule.id,
            "summary": summary,
            "severity": rule.severity,
            "evaluated_at": iso(now),
        }
    )
    if reporting:
        data["report"] = report
    else:
        data["values"] = [_row_text(r) for r in rows[:VALUES_SHOWN]]
    alerting = not (test or reporting)
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
                dedupe_key=dkey if alerting else None,
                action=action if alerting else None,
                repeat_interval_seconds=rule.repeat_interval_seconds if alerting else None,
                notify_resolved=rule.notify_resolved if alerting else None,
                **target,
            )
        )
    return events


def _row_text(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())[:300]
