"""Conditions over a source's rows. Pure: rows, the previous run's memory and "now" in, a
verdict out.

Stateful kinds (any_rows, threshold, freshness, unreachable) say which alert keys are true
now; the evaluation turns that into pending, firing and resolved over time (`for`). Edge
kinds (new_rows, changed) fire once on what differs from the previous run; their first
run only sets the baseline, as there is nothing to compare with.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerting.durations import format_duration, parse_duration
from alerting.report import report_summary
from alerting.rules import (
    AnyRows,
    Changed,
    Condition,
    Freshness,
    NewRows,
    Report,
    Threshold,
    Unreachable,
)
from alerting.sources import SourceResult

KEYS_REMEMBERED = 5_000  # as 16-character digests: about 100 KB of state at most

OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass
class Verdict:
    active: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Stateful kinds: alert key ("" for the rule as a whole) → the rows that make it true."""
    edges: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    """Edge kinds: (alert key, rows) to fire once each."""
    memory: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    seen: set[str] | None = None
    """Keys the rows speak for, when that is not every key: under a row cap a key outside
    it may have rows past the cap, so it is neither true nor false."""


def digest(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def evaluate(
    condition: Condition, result: SourceResult, memory: dict[str, Any], now: datetime
) -> Verdict:
    """Raises nothing for odd data: a missing column or a bad value is the rule's error,
    reported as ValueError with the column named."""
    rows = result.rows
    if isinstance(condition, Unreachable):
        slow = parse_duration(condition.slow) if condition.slow else None
        if result.error:
            return Verdict({"": rows}, summary=f"source failed: {result.error}")
        if slow is not None and result.duration_s > slow:
            took = f"{result.duration_s:.2f}s"
            return Verdict(
                {"": rows}, summary=f"source answered in {took} (slow: {condition.slow})"
            )
        return Verdict(summary=f"source answered in {result.duration_s:.2f}s")
    if isinstance(condition, AnyRows):
        if len(rows) >= condition.min_rows:
            return Verdict({"": rows}, summary=f"{len(rows)} row(s)")
        return Verdict(summary=f"{len(rows)} row(s)")
    if isinstance(condition, Threshold):
        return _threshold(condition, rows)
    if isinstance(condition, Freshness):
        return _freshness(condition, rows, now)
    if isinstance(condition, NewRows):
        return _new_rows(condition, rows, memory, result.truncated)
    if isinstance(condition, Report):  # every run sends: an edge each time, no memory
        return Verdict(edges=[("", rows)], summary=report_summary(len(rows), result.truncated))
    assert isinstance(condition, Changed)
    return _changed(condition, rows, memory)


def _column(row: dict[str, Any], column: str) -> Any:
    if column not in row:
        raise ValueError(f"column {column!r} is not in the result (columns: {', '.join(row)})")
    return row[column]


def _compare(actual: Any, op: str, expected: float | str) -> bool:
    if actual is None:
        return False
    if isinstance(expected, str):
        return OPS[op](str(actual), expected)
    try:
        number = float(actual)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"value {actual!r} is not a number") from exc
    return OPS[op](number, float(expected))


def _threshold(condition: Threshold, rows: list[dict[str, Any]]) -> Verdict:
    active: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if _compare(_column(row, condition.column), condition.op, condition.value):
            key = str(_column(row, condition.key_column)) if condition.key_column else ""
            active.setdefault(key, []).append(row)
    what = f"{condition.column} {condition.op} {condition.value}"
    seen = (
        {str(_column(row, condition.key_column)) for row in rows} if condition.key_column else set()
    )
    return Verdict(
        active, summary=f"{sum(map(len, active.values()))} row(s) with {what}", seen=seen
    )


def parse_time(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"value {value!r} is not a timestamp")


def _freshness(condition: Freshness, rows: list[dict[str, Any]], now: datetime) -> Verdict:
    bound = parse_duration(condition.max_age)
    newest: dict[str, tuple[datetime | None, dict[str, Any]]] = {}
    for row in rows:
        key = str(_column(row, condition.key_column)) if condition.key_column else ""
        raw = _column(row, condition.column)
        stamp = None if raw is None else parse_time(raw)
        seen = newest.get(key)
        if seen is None or (stamp is not None and (seen[0] is None or stamp > seen[0])):
            newest[key] = (stamp, row)
    if not newest and not condition.key_column:
        return Verdict(
            {"": []}, summary=f"no rows: no {condition.column} within {condition.max_age}"
        )
    active: dict[str, list[dict[str, Any]]] = {}
    ages = []
    for key, (stamp, row) in newest.items():
        age = None if stamp is None else (now - stamp).total_seconds()
        if age is None or age > bound:
            active[key] = [{**row, "age": format_duration(age) if age is not None else None}]
        if age is not None:
            ages.append(age)
    oldest = format_duration(max(ages)) if ages else "unknown"
    return Verdict(
        active,
        summary=f"newest {condition.column} is {oldest} old (max {condition.max_age})",
        seen=set(newest),
    )


def key_digest(key: str) -> str:
    """What `new_rows` remembers of a key: 16 characters, however long the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _new_rows(
    condition: NewRows, rows: list[dict[str, Any]], memory: dict[str, Any], truncated: bool
) -> Verdict:
    keys = [str(_column(row, condition.key_column)) for row in rows]
    digests = [key_digest(k) for k in keys]
    remembered = memory.get("digests")
    if remembered is None and memory.get("keys") is not None:  # remembered before digests
        remembered = [key_digest(str(k)) for k in memory["keys"]]
    current = list(dict.fromkeys(digests))
    if truncated and remembered:
        # Rows past the cap are not gone: keep remembering them, newest first.
        current = list(dict.fromkeys(current + list(remembered)))
    new_memory = {"digests": current[:KEYS_REMEMBERED]}
    if remembered is None:
        return Verdict(memory=new_memory, summary=f"baseline: {len(keys)} key(s)")
    before = set(remembered)
    fresh = [row for row, d in zip(rows, digests, strict=True) if d not in before]
    new_keys = sorted(k for k, d in zip(keys, digests, strict=True) if d not in before)
    edges = [(digest(new_keys), fresh)] if fresh else []
    return Verdict(edges=edges, memory=new_memory, summary=f"{len(fresh)} new row(s)")


def _changed(condition: Changed, rows: list[dict[str, Any]], memory: dict[str, Any]) -> Verdict:
    if condition.columns:
        projected = [{c: _column(row, c) for c in condition.columns} for row in rows]
    else:
        projected = rows
    current = digest(projected)
    new_memory = {"hash": current, "row": rows[0] if rows else {}}
    previous = memory.get("hash")
    if previous is None:
        return Verdict(memory=new_memory, summary="baseline")
    if previous == current:
        return Verdict(memory=new_memory, summary="unchanged")
    return Verdict(edges=[(current, rows)], memory=new_memory, summary="result changed")
