"""The headline figures of the benchmarks, each with its target and where it sits in a
run's results: the table that opens docs/benchmarks.md and the summary a run prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]


def lookup(data: dict[str, Any] | None, *path: str) -> Any:
    """`data[path[0]][path[1]]...`, or None where the path ends early."""
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _peak(data: dict[str, Any] | None, role: str) -> tuple[float | None, str]:
    peaks = lookup(data, "peak_rss_mb") or {}
    found = [(v, k) for k, v in peaks.items() if k.startswith(role)]
    if not found:
        return None, ""
    value, name = max(found)
    return value, name


# (figure, unit, target text, holds(value), getter)
FIGURES: list[tuple[str, str, str, Callable[[float], bool], Getter]] = [
    (
        "API accepted events/s (32 users)",
        "/s",
        "",
        lambda v: True,
        lambda d: lookup(d, "api", "herald", "accepted_per_s"),
    ),
    (
        "API p50 latency (32 users)",
        "ms",
        "",
        lambda v: True,
        lambda d: lookup(d, "api", "herald", "p50_ms"),
    ),
    (
        "API p99 latency (32 users)",
        "ms",
        "",
        lambda v: True,
        lambda d: lookup(d, "api", "herald", "p99_ms"),
    ),
    (
        "API CPU per accepted event",
        "ms",
        "≤ 1",
        lambda v: v <= 1.0,
        lambda d: lookup(d, "api", "herald", "cpu_ms_per_accepted"),
    ),
    (
        "bare FastAPI CPU per request (same run)",
        "ms",
        "",
        lambda v: True,
        lambda d: lookup(d, "api", "bare", "cpu_ms_per_accepted"),
    ),
    (
        "API CPU ÷ bare FastAPI CPU",
        "x",
        "",
        lambda v: True,
        lambda d: lookup(d, "api", "herald", "cpu_ratio_to_bare"),
    ),
    (
        "AWS requests per notification, activity (1 event → 3 channels)",
        "",
        "≤ 3.0",
        lambda v: v <= 3.0,
        lambda d: lookup(d, "requests", "activity", "aws_requests_per_notification"),
    ),
    (
        "AWS requests per notification, topic (1 event → 1,000 subscribers)",
        "",
        "≤ 1.5",
        lambda v: v <= 1.5,
        lambda d: lookup(d, "requests", "topic", "aws_requests_per_notification"),
    ),
    (
        "Herald CPU per 1,000 notifications, activity",
        "s",
        "≤ 3",
        lambda v: v <= 3.0,
        lambda d: lookup(d, "requests", "activity", "herald_cpu_s_per_1000"),
    ),
    (
        "Herald CPU per 1,000 notifications, topic",
        "s",
        "≤ 3",
        lambda v: v <= 3.0,
        lambda d: lookup(d, "requests", "topic", "herald_cpu_s_per_1000"),
    ),
    (
        "Herald CPU per 1,000 notifications, steady 20 events/s",
        "s",
        "≤ 3",
        lambda v: v <= 3.0,
        lambda d: lookup(d, "latency", "herald_cpu_s_per_1000"),
    ),
    (
        "End-to-end p50 at 20 events/s",
        "ms",
        "≤ 150",
        lambda v: v <= 150,
        lambda d: lookup(d, "latency", "end_to_end_ms", "p50"),
    ),
    (
        "End-to-end p95 at 20 events/s",
        "ms",
        "",
        lambda v: True,
        lambda d: lookup(d, "latency", "end_to_end_ms", "p95"),
    ),
    (
        "End-to-end p99 at 20 events/s",
        "ms",
        "≤ 500",
        lambda v: v <= 500,
        lambda d: lookup(d, "latency", "end_to_end_ms", "p99"),
    ),
    (
        "End-to-end p50 at 5 events/s",
        "ms",
        "",
        lambda v: True,
        lambda d: lookup(d, "latency_low", "end_to_end_ms", "p50"),
    ),
    (
        "End-to-end p99 at 5 events/s",
        "ms",
        "",
        lambda v: True,
        lambda d: lookup(d, "latency_low", "end_to_end_ms", "p99"),
    ),
    (
        "Critical p99 with 1,000 normal queued",
        "ms",
        "≤ 1000",
        lambda v: v <= 1000,
        lambda d: lookup(d, "priority", "critical_ms", "p99"),
    ),
    (
        "AWS requests/s of the whole stack when idle",
        "/s",
        "≤ 1",
        lambda v: v <= 1.0,
        lambda d: lookup(d, "idle", "requests_per_s"),
    ),
    (
        "Peak RSS, API",
        "MB",
        "≤ 150",
        lambda v: v <= 150,
        lambda d: _peak(d, "api")[0],
    ),
    (
        "Peak RSS, largest worker",
        "MB",
        "≤ 120",
        lambda v: v <= 120,
        lambda d: _peak(d, "worker")[0],
    ),
]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit in ("/s", "ms") and abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return text


def figures_table(results: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    head = "| figure | target | "
    head += "before | now | holds |" if before else "now | holds |"
    lines = [head, "|---|---|---|---|" + ("---|" if before else "")]
    for name, unit, target, holds, get in FIGURES:
        now = get(results)
        verdict = ""
        if target and now is not None and not math.isnan(now):
            verdict = "yes" if holds(now) else "**no**"
        label = f"{name} ({unit})" if unit and unit not in ("x", "/s") else name
        row = f"| {label} | {target or ''} | "
        if before:
            row += f"{_fmt(get(before), unit)} | "
        row += f"{_fmt(now, unit)} | {verdict} |"
        lines.append(row)
    return lines


def summary(results: dict[str, Any], before: dict[str, Any] | None) -> str:
    lines = ["", "Herald benchmarks" + (" (before → now)" if before else ""), ""]
    for name, unit, target, holds, get in FIGURES:
        now = get(results)
        if now is None:
            continue
        text = f"{_fmt(now, unit)} {unit}".strip()
        if before and get(before) is not None:
            text = f"{_fmt(get(before), unit)} → {text}"
        verdict = ""
        if target and not math.isnan(now):
            verdict = f"  [target {target}: {'holds' if holds(now) else 'MISSED'}]"
        lines.append(f"  {name}: {text}{verdict}")
    return "\n".join(lines) + "\n"
