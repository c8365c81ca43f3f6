"""What Herald would cost and where it would throttle on AWS, from the emulators' capacity
meters (`localstack.capacity`): `python -m bench.run --only capacity`.

Workloads, each on fresh emulators and fresh Herald processes:

- activity: N events (500 by default), each to one user who wants sms, email and chat;
- topic: one trend event to a topic of 1,000 subscribers (email);
- steady: activity events at 20 events/s, one notification each;
- topic-large: one trend event to a topic of 100,000 subscribers (`make bench-full`, or
  `--topic-large N`; `make bench` leaves it out; seeded with BatchWriteItem as `bench.seed`
  does), timed, with peak memory and the cost of `GET /events/{id}` on it.

Per workload: write and read units per delivered notification (table and each index), the
hottest partition key of each when the workload is scaled to 1,000 notifications/s (its
units per notification x 1,000) against AWS's per-partition limits, AWS charges per million
notifications at us-east-1 on-demand list prices, AWS requests and Herald CPU per
notification. Every user gets one event, so no user key is hot only because the bench
reuses users. The bench's own polling is sent unmetered; what the meters see includes the
workers' idle long polls while the workload runs (billed by SQS like any request).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from bench import capacity_scale, seed
from bench.meter import Meter, usage
from bench.stack import API_KEY, Stack
from bench.workload import (
    activity_body,
    log,
    post_events,
    run_workload,
    trend_body,
    wait_delivered,
    wait_settled,
    warm_up,
)
from core.aws.clients import AwsClients
from localstack.capacity import TABLE
from localstack.capacity_moto import UNMETERED

NOTIFICATIONS_PER_SECOND = 1000  # the scale the partition figures are given at
PARTITION_LIMITS = {"wcu": 1000.0, "rcu": 3000.0}  # per partition key, per second
# us-east-1 on-demand list prices, $ per million
PRICE = {"write_unit": 0.625, "read_unit": 0.125, "sqs_request": 0.40, "sns_publish": 0.50}


def unmetered(clients: AwsClients) -> AwsClients:
    """Clients like these whose every request is marked so the meters leave it out (through
    botocore, whose `before-sign` event marks them)."""
    clients = AwsClients(clients.settings.model_copy(update={"aws_wire": "botocore"}))

    def mark(request: Any, **_: Any) -> None:
        request.headers[UNMETERED] = "1"

    for client in (clients.dynamodb, clients.sqs, clients.sns):
        client.meta.events.register("before-sign.*.*", mark)
    return clients


def _label(table: str, target: str, tables: int) -> str:
    name = "table" if target == TABLE else target
    return name if tables == 1 else f"{table}:{name}"


def figures(
    raw: dict[str, Any], notifications: int, rate: int = NOTIFICATIONS_PER_SECOND
) -> dict[str, Any]:
    """Units, hottest keys and charges per notification from one workload's meters (run at
    the layout of `rate`), and the hottest keys re-spread over 10,000/s's layout."""
    n = max(notifications, 1)
    tables = raw["dynamodb"]["tables"]
    targets: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    hottest_pct = 0.0
    hottest_at = ""
    wcu = rcu = 0.0
    for table, per in tables.items():
        for target, t in per.items():
            label = _label(table, target, len(tables))
            row: dict[str, Any] = {
                "wcu_per_notification": t["wcu"] / n,
                "rcu_per_notification": t["rcu"] / n,
                "partition_keys": t.get("partition_keys", 0),
                "wcu_by_write": {
                    op: units["wcu"] / n
                    for op, units in sorted(t.get("by_operation", {}).items())
                    if units["wcu"]
                },
            }
            wcu += t["wcu"]
            rcu += t["rcu"]
            kept[label] = {"keys_by_wcu": t["hottest_by_wcu"], "keys_by_rcu": t["hottest_by_rcu"]}
            for unit, ranked in (("wcu", t["hottest_by_wcu"]), ("rcu", t["hottest_by_rcu"])):
                if not ranked:
                    continue
                top = ranked[0]
                at_scale = top[unit] / n * NOTIFICATIONS_PER_SECOND
                pct = at_scale / PARTITION_LIMITS[unit] * 100
                row[f"hottest_{unit}"] = {
                    "key": top["key"],
                    "per_notification": top[unit] / n,
                    "per_second_at_scale": at_scale,
                    "pct_of_limit": pct,
                    "measured_peak_per_second": top["peak_per_second"],
                }
                if pct > hottest_pct:
                    hottest_pct, hottest_at = pct, f"{label} {unit.upper()} {top['key']}"
            targets[label] = row
    sqs = sum(a.get("billed", 0) for a in raw["sqs"].values())
    empty = sum(a.get("empty", 0) for a in raw["sqs"].values())
    sns = sum(a.get("billed", 0) for a in raw["sns"].values())
    cost = {
        "dynamodb_write": wcu / n * PRICE["write_unit"],
        "dynamodb_read": rcu / n * PRICE["read_unit"],
        "sqs": sqs / n * PRICE["sqs_request"],
        "sns": sns / n * PRICE["sns_publish"],
    }
    cost["total"] = sum(cost.values())
    return {
        "notifications": notifications,
        "targets": targets,
        "wcu_per_notification": wcu / n,
        "rcu_per_notification": rcu / n,
        "sqs_requests_per_notification": sqs / n,
        "sqs_empty_receives": empty,
        "sns_publishes_per_notification": sns / n,
        "usd_per_million": cost,
        "hottest_pct_of_limit": hottest_pct,
        "hottest_where": hottest_at,
        "at_scale": capacity_scale.at_scale(kept, notifications, rate),
        "dynamodb_requests": raw["dynamodb"]["requests"],
        "sqs_actions": raw["sqs"],
        "sns_actions": raw["sns"],
    }


def _summary(workload: dict[str, Any]) -> dict[str, Any]:
    """The Herald-side figures of a `bench.workload` run worth keeping beside the meters."""
    keep = (
        "notifications",
        "events",
        "expected",
        "aws_requests",
        "aws_requests_per_notification",
        "herald_cpu_s",
        "cpu_by_process",
        "calls_by_process",
        "wall_s",
        "emulator_busy",
        "event_statuses",
    )
    out = {k: workload[k] for k in keep if k in workload}
    n = max(int(workload.get("notifications") or 0), 1)
    out["herald_cpu_ms_per_notification"] = workload.get("herald_cpu_s", 0.0) / n * 1000
    return out


def _report(name: str, out: dict[str, Any]) -> None:
    cost = out["usd_per_million"]["total"]
    log(
        f"capacity {name}: {out['notifications']} notifications, "
        f"{out['wcu_per_notification']:.2f} WCU and {out['rcu_per_notification']:.2f} RCU each, "
        f"${cost:.2f} per million, hottest key {out['hottest_pct_of_limit']:.0f}% of its limit "
        f"({out['hottest_where']}), "
        f"{out.get('aws_requests_per_notification', float('nan')):.2f} requests each"
    )


def phase_capacity(
    stack: Stack,
    results: dict[str, Any],
    activity: int,
    topic: int,
    rate: float,
    seconds: float,
    topic_large: int,
    workloads: set[str] | None = None,
) -> None:
    """The workloads named in `workloads` (all by default), into `results["capacity"]`.

    The meters cost the emulators CPU, so the other phases run without them: the first
    capacity workload restarts the emulators (and the sandbox) metered."""
    if not stack.capacity:
        stack.stop()
        stack.capacity = True
        stack.start()
    out: dict[str, Any] = {"scale_notifications_per_s": NOTIFICATIONS_PER_SECOND}
    chosen = workloads or {"activity", "topic", "steady", "topic_large"}
    if "activity" in chosen:
        out["activity"] = activity_run(stack, activity)
    if "topic" in chosen:
        out["topic"] = topic_run(stack, topic)
    if "steady" in chosen:
        out["steady"] = steady(stack, rate, seconds)
        _report("steady", out["steady"])
    if "topic_large" in chosen and topic_large:
        out["topic_large"] = large_topic(stack, topic_large)
        _report("topic-large", out["topic_large"])
    results["capacity"] = out


# Events each fresh set of processes takes before the activity workload is measured
# (`bench.workload.warm_up`).
WARM_UP_EVENTS = 30


def activity_run(stack: Stack, activity: int) -> dict[str, Any]:
    # activity: one event per user, each to three channels
    clients = unmetered(stack.fresh_aws())
    users = seed.users(clients, "cap", activity, lambda i: ["sms", "email", "chat"])
    base = stack.start_herald("capacity-activity")
    warm_up(stack, clients, base, "capwarm", WARM_UP_EVENTS)
    stack.capacity_reset()
    log(f"capacity activity: {activity} events x sms, email, chat")
    w = run_workload(stack, clients, base, [activity_body(u) for u in users], activity * 3, 8, 600)
    a = figures(stack.capacity_read(capacity_scale.TOP), w["notifications"]) | _summary(w)
    a["events"] = activity
    a["warm_up_events"] = WARM_UP_EVENTS
    a["peak_rss_mb"] = stack.stop_herald()
    _report("activity", a)
    return a


def topic_run(stack: Stack, topic: int) -> dict[str, Any]:
    """One event to `topic` subscribers who want email."""
    clients = unmetered(stack.fresh_aws())
    subscribers = seed.users(clients, "sub", topic, lambda i: ["email"])
    seed.subscriptions(clients, "bench-charts", subscribers, ["email"])
    base = stack.start_herald("capacity-topic")
    stack.capacity_reset()
    log(f"capacity topic: one trend event to {topic} subscribers")
    w = run_workload(stack, clients, base, [trend_body("bench-charts")], topic, 1, 600)
    t = figures(stack.capacity_read(capacity_scale.TOP), w["notifications"]) | _summary(w)
    t["subscribers"] = topic
    t["peak_rss_mb"] = stack.stop_herald()
    _report("topic", t)
    return t


def steady(stack: Stack, rate: float, seconds: float) -> dict[str, Any]:
    """Activity events at a steady rate, one notification each, one event per user."""
    clients = unmetered(stack.fresh_aws())
    stack.clear_sandbox()
    count = int(rate * seconds)
    channels = ["sms", "email", "chat"]
    users = seed.users(clients, "steady", count, lambda i: [channels[i % 3]])
    base = stack.start_herald("capacity-steady")
    log(f"capacity steady: {count} activity events at {rate:g}/s")
    stack.capacity_reset()
    before = stack.snapshot()
    meter = Meter(stack.emulators)
    bodies = [activity_body(u, "like") for u in users]
    sent = post_events(base, bodies, concurrency=32, rate=rate)
    arrived = wait_delivered(stack, set(sent), len(sent), timeout=300)
    wait_settled(clients, list(sent), timeout=60)
    window = meter.done()
    after = stack.snapshot()
    raw = stack.capacity_read(capacity_scale.TOP)
    used = usage(stack, before, after, len(arrived))
    s = figures(raw, len(arrived)) | _summary({**used, **window, "events": len(sent)})
    s["rate"] = rate
    s["seconds"] = seconds
    s["peak_rss_mb"] = stack.stop_herald()
    return s


def large_topic(stack: Stack, size: int) -> dict[str, Any]:
    """One trend event to `size` subscribers, waited for until SUCCESS (from the event's
    counts, not the sandbox's list, which would be as long as the topic)."""
    clients = unmetered(stack.fresh_aws())
    stack.clear_sandbox()
    t0 = time.monotonic()
    topic = "bench-large"
    for start in range(0, size, 10_000):
        count = min(10_000, size - start)
        ids = seed.users(clients, f"big{start // 10_000}", count, lambda i: ["email"])
        seed.subscriptions(clients, topic, ids, ["email"])
    seeded_s = time.monotonic() - t0
    log(f"capacity topic-large: {size} subscribers seeded in {seeded_s:.0f}s")
    # Sends are emulator-bound; more of them in flight keep the pipeline full.
    base = stack.start_herald("capacity-large", extra_env={"HERALD_SEND_CONCURRENCY": "50"})
    stack.capacity_reset()
    before = stack.snapshot()
    meter = Meter(stack.emulators)
    body = trend_body(topic)
    started = time.monotonic()
    with httpx.Client(base_url=base, timeout=60, headers={"X-API-Key": API_KEY}) as api:
        resp = api.post("/events", json=body)
        resp.raise_for_status()
        settled = wait_settled(clients, [body["event_id"]], timeout=max(600.0, size * 0.2))
        wall = time.monotonic() - started
        window = meter.done()
        after = stack.snapshot()
        raw = stack.capacity_read(capacity_scale.TOP)
        peaks = {n: p.peak_rss_mb() for n, p in stack.herald.items() if p.alive()}
        t1 = time.perf_counter()
        page = api.get(f"/events/{body['event_id']}")
        get_ms = (time.perf_counter() - t1) * 1000
    event = page.json() if page.status_code == 200 else {}
    counts = event.get("counts") or {}
    sent = int(counts.get("sent") or 0)
    used = usage(stack, before, after, sent)
    out = figures(raw, sent) | _summary({**used, **window, "events": 1})
    out.update(
        {
            "subscribers": size,
            "seed_s": seeded_s,
            "settled": settled,
            "status": event.get("status"),
            "wall_s": wall,
            "counts": counts,
            "peak_rss_mb": peaks,
            "get_event": {
                "status_code": page.status_code,
                "ms": get_ms,
                "bytes": len(page.content),
                "notifications_in_page": len(event.get("notifications") or []),
                "has_cursor": bool(event.get("notifications_cursor")),
            },
        }
    )
    stack.stop_herald()
    return out
