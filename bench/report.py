"""docs/benchmarks.md from the figures of a run (and, if given, an earlier run beside them)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]


def _get(data: dict[str, Any] | None, *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _peak(data: dict[str, Any] | None, role: str) -> tuple[float | None, str]:
    peaks = _get(data, "peak_rss_mb") or {}
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
        lambda d: _get(d, "api", "herald", "accepted_per_s"),
    ),
    (
        "API p50 latency (32 users)",
        "ms",
        "",
        lambda v: True,
        lambda d: _get(d, "api", "herald", "p50_ms"),
    ),
    (
        "API p99 latency (32 users)",
        "ms",
        "",
        lambda v: True,
        lambda d: _get(d, "api", "herald", "p99_ms"),
    ),
    (
        "API CPU per accepted event",
        "ms",
        "≤ 1",
        lambda v: v <= 1.0,
        lambda d: _get(d, "api", "herald", "cpu_ms_per_accepted"),
    ),
    (
        "bare FastAPI CPU per request (same run)",
        "ms",
        "",
        lambda v: True,
        lambda d: _get(d, "api", "bare", "cpu_ms_per_accepted"),
    ),
    (
        "API CPU ÷ bare FastAPI CPU",
        "x",
        "",
        lambda v: True,
        lambda d: _get(d, "api", "herald", "cpu_ratio_to_bare"),
    ),
    (
        "AWS requests per notification, activity (1 event → 3 channels)",
        "",
        "≤ 3.0",
        lambda v: v <= 3.0,
        lambda d: _get(d, "requests", "activity", "aws_requests_per_notification"),
    ),
    (
        "AWS requests per notification, topic (1 event → 1,000 subscribers)",
        "",
        "≤ 1.5",
        lambda v: v <= 1.5,
        lambda d: _get(d, "requests", "topic", "aws_requests_per_notification"),
    ),
    (
        "Herald CPU per 1,000 notifications, activity",
        "s",
        "≤ 3",
        lambda v: v <= 3.0,
        lambda d: _get(d, "requests", "activity", "herald_cpu_s_per_1000"),
    ),
    (
        "Herald CPU per 1,000 notifications, topic",
        "s",
        "≤ 3",
        lambda v: v <= 3.0,
        lambda d: _get(d, "requests", "topic", "herald_cpu_s_per_1000"),
    ),
    (
        "Herald CPU per 1,000 notifications, steady 20 events/s",
        "s",
        "≤ 3",
        lambda v: v <= 3.0,
        lambda d: _get(d, "latency", "herald_cpu_s_per_1000"),
    ),
    (
        "End-to-end p50 at 20 events/s",
        "ms",
        "≤ 150",
        lambda v: v <= 150,
        lambda d: _get(d, "latency", "end_to_end_ms", "p50"),
    ),
    (
        "End-to-end p95 at 20 events/s",
        "ms",
        "",
        lambda v: True,
        lambda d: _get(d, "latency", "end_to_end_ms", "p95"),
    ),
    (
        "End-to-end p99 at 20 events/s",
        "ms",
        "≤ 500",
        lambda v: v <= 500,
        lambda d: _get(d, "latency", "end_to_end_ms", "p99"),
    ),
    (
        "Critical p99 with 1,000 normal queued",
        "ms",
        "≤ 1000",
        lambda v: v <= 1000,
        lambda d: _get(d, "priority", "critical_ms", "p99"),
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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def figures_table(results: dict[str, Any], before: dict[str, Any] | None) -> list[str]:
    head = "| figure | target | "
    head += "before | now | holds |" if before else "now | holds |"
    lines = [head, "|---|---|---|---|" + ("---|" if before else "")]
    for name, unit, target, holds, get in FIGURES:
        now = get(results)
        verdict = ""
        if target and now is not None and not math.isnan(now):
            verdict = "yes" if holds(now) else "**no**"
        label = f"{name} ({unit})" if unit and unit != "x" else name
        row = f"| {label} | {target or ''} | "
        if before:
            row += f"{_fmt(get(before), unit)} | "
        row += f"{_fmt(now, unit)} | {verdict} |"
        lines.append(row)
    return lines


def calls_table(workload: dict[str, Any]) -> list[str]:
    """Requests per notification by process and operation."""
    n = max(int(workload.get("notifications") or 0), 1)
    rows: list[tuple[str, str, int]] = []
    for process, services in sorted(workload.get("calls_by_process", {}).items()):
        for service, ops in sorted(services.items()):
            for op, count in sorted(ops.items()):
                rows.append((process, f"{service} {op}", count))
    lines = ["| process | call | requests | per notification |", "|---|---|---|---|"]
    for process, call, count in rows:
        lines.append(f"| {process} | {call} | {count} | {count / n:.3f} |")
    total = sum(c for _, _, c in rows)
    lines.append(f"| **all** | | **{total}** | **{total / n:.2f}** |")
    return lines


def cpu_line(workload: dict[str, Any]) -> str:
    parts = [f"{name} {cpu:.2f} s" for name, cpu in sorted(workload["cpu_by_process"].items())]
    return "CPU by process: " + ", ".join(parts) + "."


def window_line(workload: dict[str, Any]) -> str:
    return (
        f"Wall time {workload['wall_s']:.1f} s; the emulator used "
        f"{workload['emulator_cpu_s']:.1f} CPU s ({_pct(workload['emulator_busy'])} of one "
        f"core), the whole machine was {_pct(workload['machine_busy'])} busy."
    )


def render(results: dict[str, Any], before: dict[str, Any] | None, before_path: str) -> str:
    m = results["machine"]
    out = [
        "# Benchmarks",
        "",
        "<!-- generated by `make bench` (bench/run.py); edit the generator, not this file -->",
        "",
        f"Reproduce: `{results['command']}` (about {results['duration_s'] / 60:.0f} minutes; "
        "everything runs on loopback against the moto server and the provider sandbox).",
        "",
        f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gb']} GB memory, Linux "
        f"{m['kernel']}, Python {m['python']}, moto {m['moto']}, uvicorn {m['uvicorn']}, "
        f"locust {m['locust']}. Run on {m['date']} at commit `{m['commit']}`.",
        "",
        "## Figures and targets",
        "",
    ]
    if before:
        bm = before["machine"]
        out += [
            f"*before* is the same harness run on {bm['date']} at commit `{bm['commit']}`, "
            f"before the optimisations described below (figures kept in `{before_path}`); "
            "*now* is this run.",
            "",
        ]
    out += figures_table(results, before)
    out += [
        "",
        "AWS requests are every call Herald's own processes made (API, router, workers), "
        "counted by a botocore `after-call` hook (`HERALD_AWS_CALL_LOG`), idle long polls "
        "included, divided by the notifications the providers received. CPU is user + system "
        "time of those processes from `/proc/<pid>/stat`; the emulator and the sandbox are not "
        "counted. Peak RSS is `VmHWM` from `/proc/<pid>/status`.",
        "",
    ]
    api = results.get("api")
    if api:
        h, b = api["herald"], api["bare"]
        out += [
            "## API under Locust",
            "",
            f"`locust {h['command']}` with only single activity events "
            "(`HERALD_LOAD_W_ACTIVITY=1`, the other weights 0, no wait between requests), "
            f"{api['users']} users for {api['seconds']} s, after 100 warm-up requests; "
            "then the same against `bench/bare_app.py` (FastAPI, same uvicorn, answers 202 "
            "and does nothing). API CPU is read from /proc before and after the Locust run.",
            "",
            "| | accepted/s | p50 ms | p99 ms | failures | CPU ms per event | "
            "emulator busy | machine busy |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in (("Herald", h), ("bare FastAPI", b)):
            out.append(
                f"| {name} | {row['accepted_per_s']:.0f} | {row['p50_ms']:.0f} | "
                f"{row['p99_ms']:.0f} | {row['failures']} | "
                f"{row['cpu_ms_per_accepted']:.3f} | {_pct(row['emulator_busy'])} | "
                f"{_pct(row['machine_busy'])} |"
            )
        out += [
            "",
            f"Herald spends {h['cpu_ratio_to_bare']:.1f}x the CPU of the bare app per event. "
            f"Locust itself used {h['locust_cpu_s']:.1f} CPU s in the Herald run and "
            f"{b['locust_cpu_s']:.1f} s in the bare run, on the same {m['cores']} cores.",
            "",
        ]
    req = results.get("requests")
    if req:
        a, t = req["activity"], req["topic"]
        out += [
            "## AWS requests and CPU per notification",
            "",
            f"**(a) activity:** {a['events']} `comment` events posted by 8 concurrent clients "
            f"to 50 users who want sms, email and chat: {a['notifications']} of "
            f"{a['expected']} notifications delivered; events {a['event_statuses']}.",
            "",
            *calls_table(a),
            "",
            cpu_line(a) + " " + window_line(a),
            "",
            f"**(b) topic:** one `trend.top_artist_changed` event to a topic of "
            f"{t['expected']:,} subscribers who want email: {t['notifications']} delivered; "
            f"event {t['event_statuses']}.",
            "",
            *calls_table(t),
            "",
            cpu_line(t) + " " + window_line(t),
            "",
        ]
    lat = results.get("latency")
    if lat:
        e = lat["end_to_end_ms"]
        out += [
            "## End-to-end latency",
            "",
            f"{lat['events']} `like` events at a steady {lat['rate']:g} events/s (an open "
            "loop: each POST starts on schedule whatever the answers) to 60 users with one "
            "channel each (sms, email or chat in turn). Latency is from the moment the "
            "client sent the POST to the moment the sandbox received the provider request "
            f"(`received_at`), per notification: {e['count']} measured, p50 {e['p50']:.0f} "
            f"ms, p95 {e['p95']:.0f} ms, p99 {e['p99']:.0f} ms, max {e['max']:.0f} ms.",
            "",
            "Where the time goes, from the timestamps Herald records (the event's "
            "`created_at`, the notification's `created_at` and its `SENDING` history entry):",
            "",
            "| hop | p50 ms | p95 ms | p99 ms |",
            "|---|---|---|---|",
        ]
        for name, q in lat["hops_ms"].items():
            out.append(f"| {name} | {q['p50']:.0f} | {q['p95']:.0f} | {q['p99']:.0f} |")
        out += [
            "",
            f"{lat['aws_requests_per_notification']:.2f} AWS requests and "
            f"{lat['herald_cpu_s_per_1000']:.2f} CPU s per 1,000 notifications in this run. "
            + window_line(lat),
            "",
            *calls_table(lat),
            "",
        ]
    pri = results.get("priority")
    if pri:
        c = pri["critical_ms"]
        left = pri["backlog"] - pri["backlog_sent_before_last_critical"]
        out += [
            "## Priority isolation",
            "",
            f"{pri['backlog']:,} normal email notifications are recorded and queued while the "
            f"email worker is paused; it resumes and {pri['critical_events']} "
            "`security.login_alert` events (critical, email) are posted at 5/s. Critical "
            f"end to end: p50 {c['p50']:.0f} ms, p95 {c['p95']:.0f} ms, p99 {c['p99']:.0f} "
            f"ms, max {c['max']:.0f} ms; {left:,} normal notifications were still waiting "
            "when the last critical one reached the provider. " + window_line(pri),
            "",
        ]
    peaks = results.get("peak_rss_mb") or {}
    if peaks:
        out += ["## Peak memory", "", "| process (run) | VmHWM MB |", "|---|---|"]
        for name, value in sorted(peaks.items()):
            out.append(f"| {name} | {value:.0f} |")
        out.append("")
    return "\n".join(out)


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
