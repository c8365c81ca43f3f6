"""Phases 2 to 4 of the benchmarks, the delivery pipeline end to end (API, router, a
worker per channel, the provider sandbox):

2. AWS requests and Herald CPU per delivered notification: (a) activity events to users
   who want sms, email and chat; (b) one trend event to a topic of subscribers who want
   email.
3. End-to-end latency, POST → the sandbox receiving the provider request, at a steady rate
   (one notification each), with a per-hop breakdown from the records' history.
4. Priority isolation: critical events while normal notifications wait on the same channel.
"""

from __future__ import annotations

import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bench import seed
from bench.meter import Meter, latencies, percentile, usage
from bench.report import HOPS
from bench.stack import Stack
from bench.workload import (
    activity_body,
    delivered,
    log,
    post_events,
    run_workload,
    trend_body,
    wait_delivered,
)
from core.aws import dynamo
from core.aws.clients import AwsClients

# --- phase 2: AWS requests and CPU per notification ------------------------------------------


def phase_requests(stack: Stack, results: dict[str, Any], activity: int, topic: int) -> None:
    clients = stack.fresh_aws()
    base = stack.start_herald("requests")
    log(f"workload (a): {activity} activity events, each to sms + email + chat")
    users = seed.users(clients, "act", 50, lambda i: ["sms", "email", "chat"])
    bodies = [activity_body(users[i % len(users)]) for i in range(activity)]
    a = run_workload(stack, clients, base, bodies, activity * 3, concurrency=8, timeout=180)
    log(
        f"(a) {a['notifications']} delivered, {a['aws_requests_per_notification']:.2f} AWS "
        f"requests and {a['herald_cpu_s_per_1000']:.2f} CPU s per 1,000 notifications"
    )
    log(f"workload (b): one trend event to a topic of {topic} subscribers (email)")
    subscribers = seed.users(clients, "sub", topic, lambda i: ["email"])
    seed.subscriptions(clients, "bench-charts", subscribers, ["email"])
    b = run_workload(
        stack, clients, base, [trend_body("bench-charts")], topic, concurrency=1, timeout=420
    )
    log(
        f"(b) {b['notifications']} delivered, {b['aws_requests_per_notification']:.2f} AWS "
        f"requests and {b['herald_cpu_s_per_1000']:.2f} CPU s per 1,000 notifications"
    )
    peaks = stack.stop_herald()
    results["requests"] = {"activity": a, "topic": b}
    for name, peak in peaks.items():
        results["peak_rss_mb"][f"{name} (requests run)"] = peak


# --- phase 3: end-to-end latency at a steady rate --------------------------------------------


def hops(clients: AwsClients, sent: dict[str, float], arrived: dict[str, float]) -> dict:
    """Per-hop durations (ms) from each notification's record: API record, router record
    (creation), worker claim (SENDING), provider request received."""
    table = clients.names.table
    parts: dict[str, list[float]] = {name: [] for name in HOPS}

    def epoch(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()

    def one(nid: str) -> None:
        event_id = nid.split(":", 1)[0]
        try:
            resp = clients.dynamodb.query(
                TableName=table,
                KeyConditionExpression="PK = :pk",
                ExpressionAttributeValues={":pk": {"S": dynamo.event_pk(event_id)}},
            )
        except (BotoCoreError, ClientError):
            return  # this one is left out of the breakdown
        items = [dynamo.from_item(i) for i in resp.get("Items", [])]
        event = next((i for i in items if i["SK"] == dynamo.EVENT_SK), None)
        record = next((i for i in items if i.get("notification_id") == nid), None)
        if event is None or record is None:
            return
        claimed = [h for h in record.get("history", []) if h.get("status") == "SENDING"]
        if not claimed:
            return
        t_api = epoch(event["created_at"])
        t_router = epoch(record["created_at"])
        t_claim = epoch(claimed[0]["at"])
        parts["client → API recorded"].append((t_api - sent[event_id]) * 1000)
        parts["API recorded → router created the record"].append((t_router - t_api) * 1000)
        parts["router created → worker claimed"].append((t_claim - t_router) * 1000)
        parts["worker claimed → provider received"].append((arrived[nid] - t_claim) * 1000)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, list(arrived)))
    return {
        name: {"p50": percentile(v, 50), "p95": percentile(v, 95), "p99": percentile(v, 99)}
        for name, v in parts.items()
    }


def latency_run(stack: Stack, rate: float, seconds: float, phase: str) -> dict[str, Any]:
    """A fresh emulator and fresh processes; activity events at a steady `rate`."""
    assert stack.moto is not None
    clients = stack.fresh_aws()
    stack.clear_sandbox()
    base = stack.start_herald(phase)
    channels = ["sms", "email", "chat"]
    users = seed.users(clients, "lat", 60, lambda i: [channels[i % 3]])
    count = int(rate * seconds)
    log(f"latency: {count} activity events at {rate:g}/s, one notification each")
    bodies = [activity_body(users[i % len(users)], "like") for i in range(count)]
    before = stack.snapshot()
    meter = Meter(stack.emulators)
    sent = post_events(base, bodies, concurrency=32, rate=rate)
    arrived = wait_delivered(stack, set(sent), len(sent), timeout=300)
    window = meter.done()
    after = stack.snapshot()
    out: dict[str, Any] = {"rate": rate, "seconds": seconds, "events": len(sent)}
    out["end_to_end_ms"] = latencies(sent, arrived)
    out["hops_ms"] = hops(clients, sent, arrived)
    out.update(usage(stack, before, after, len(arrived)))
    out.update(window)
    peaks = stack.stop_herald()
    out["peak_rss_mb"] = peaks
    e2e = out["end_to_end_ms"]
    log(f"latency: p50 {e2e['p50']:.0f} ms, p95 {e2e['p95']:.0f} ms, p99 {e2e['p99']:.0f} ms")
    return out


def phase_latency(stack: Stack, results: dict[str, Any], rate: float, seconds: float) -> None:
    """The target rate, and a quarter of it: what the pipeline adds when the emulator is
    not the bottleneck."""
    for key, run_rate, run_seconds in (
        ("latency_low", rate / 4, min(seconds, 15.0)),
        ("latency", rate, seconds),
    ):
        out = latency_run(stack, run_rate, run_seconds, key.replace("_", "-"))
        for name, peak in out.pop("peak_rss_mb").items():
            results["peak_rss_mb"][f"{name} ({key.replace('_', ' ')} run)"] = peak
        results[key] = out


# --- phase 4: priority isolation -------------------------------------------------------------


def phase_priority(stack: Stack, results: dict[str, Any], backlog: int, critical: int) -> None:
    assert stack.moto is not None
    clients = stack.fresh_aws()
    stack.clear_sandbox()
    base = stack.start_herald("priority")
    users = seed.users(clients, "crit", 30, lambda i: ["email"])
    worker = stack.herald["worker-email"]
    worker.popen.send_signal(signal.SIGSTOP)  # the backlog is all queued before it runs
    try:
        log(f"priority: queueing {backlog} normal email notifications")
        backlog_event = seed.backlog(clients, "email", backlog)
    finally:
        worker.popen.send_signal(signal.SIGCONT)
    meter = Meter(stack.emulators)
    bodies = [
        {
            "event_id": str(uuid.uuid4()),
            "type": "security.login_alert",
            "user_id": users[i % len(users)],
            "data": {"ip": "203.0.113.7", "device": "Firefox on Linux"},
        }
        for i in range(critical)
    ]
    log(f"priority: {critical} critical events at 5/s while the backlog drains")
    sent = post_events(base, bodies, concurrency=8, rate=5)
    arrived = wait_delivered(stack, set(sent), len(sent), timeout=240)
    window = meter.done()
    last = max(arrived.values()) if arrived else time.time()
    backlog_done = [at for nid, at in delivered(stack, {backlog_event}).items() if at <= last]
    out: dict[str, Any] = {
        "backlog": backlog,
        "critical_events": len(sent),
        "critical_ms": latencies(sent, arrived),
        "hops_ms": hops(clients, sent, arrived),
        "backlog_sent_before_last_critical": len(backlog_done),
        **window,
    }
    peaks = stack.stop_herald()
    results["priority"] = out
    for name, peak in peaks.items():
        results["peak_rss_mb"][f"{name} (priority run)"] = peak
    c = out["critical_ms"]
    log(
        f"priority: critical p50 {c['p50']:.0f} ms, p99 {c['p99']:.0f} ms; "
        f"{backlog - len(backlog_done)} of {backlog} normal still queued at the last one"
    )
