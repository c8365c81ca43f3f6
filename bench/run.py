"""Herald's benchmarks: `make bench` (or `python -m bench.run`) writes docs/benchmarks.md.

Everything runs on loopback: two moto servers (DynamoDB in one, SNS and SQS in the other),
the provider sandbox, Herald's API under uvicorn, the router and one worker per channel, as
separate processes. Phases:

1. API: Locust headless, 32 users back to back, 20 s, single activity events, against
   Herald's API and against a bare FastAPI app (`bench/bare_app.py`) in the same run:
   accepted events/s, p50/p99, API CPU per accepted event and the ratio to the bare app.
2. AWS requests and Herald CPU per delivered notification: (a) 50 activity events to users
   who want sms, email and chat (150 notifications); (b) one trend event to a topic of
   1,000 subscribers who want email.
3. End-to-end latency, POST → the sandbox receiving the provider request, at a steady 20
   events/s (one notification each), with a per-hop breakdown from the records' history.
4. Priority isolation: critical events while 1,000 normal notifications wait on the same
   channel.
5. Peak RSS (VmHWM) of the API and of each worker.
6. Alert rules (`bench/rules.py`): 10,000 rules every minute through the scheduler and the
   evaluators; written to docs/benchmarks-rules.md.
7. Capacity and cost on AWS (`bench/capacity.py`): DynamoDB units by table, index and
   partition key, SQS and SNS requests, $ per million notifications, Herald CPU per
   notification, and a 100,000-subscriber topic, from the emulators' meters. Alone:
   `python -m bench.run --only capacity` (splices its section into the existing report).

AWS requests are counted inside Herald's processes (`HERALD_AWS_CALL_LOG`, `core/aws/clients.py`);
CPU and memory come from /proc. The emulators are reset between phases so each starts
with an empty table and empty queues.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from bench import capacity, capacity_report, report, rules, seed
from bench.stack import API_KEY, ROOT, Proc, Snapshot, Stack, diff_calls, wait_until
from core.aws import dynamo
from core.aws.clients import AwsClients

LOCUST_USERS = 32

# --- small helpers ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Meter:
    """Wall time, the machine's CPU use and the emulators' CPU over one workload."""

    def __init__(self, emulators: Sequence[Proc]) -> None:
        self.emulators = list(emulators)
        self.t0 = time.monotonic()
        self.busy0 = machine_busy()
        self.cpu0 = [p.cpu_seconds() for p in self.emulators]

    def done(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        busy1 = machine_busy()
        busy = (busy1[0] - self.busy0[0]) / max(busy1[1] - self.busy0[1], 1)
        used = [p.cpu_seconds() - c for p, c in zip(self.emulators, self.cpu0, strict=True)]
        return {
            "wall_s": wall,
            "machine_busy": busy,
            "emulator_cpu_s": sum(used),
            # The busiest emulator process: each is one Python process, so one core at most.
            "emulator_busy": max(used) / wall if wall else 0.0,
        }


def delivered(stack: Stack, event_ids: set[str]) -> dict[str, float]:
    """First `received_at` per notification id the providers took (2xx) for these events."""
    first: dict[str, float] = {}
    for entry in stack.sandbox_messages():
        nid = entry.get("notification_id")
        if not nid or int(entry.get("status") or 0) >= 300:
            continue
        if nid.split(":", 1)[0] in event_ids:
            at = float(entry["received_at"])
            if nid not in first or at < first[nid]:
                first[nid] = at
    return first


def wait_delivered(
    stack: Stack, event_ids: set[str], expected: int, timeout: float
) -> dict[str, float]:
    found: dict[str, float] = {}

    def enough() -> bool:
        try:
            now = delivered(stack, event_ids)
        except OSError as exc:  # a busy sandbox: ask again
            log(f"reading the sandbox failed, retrying: {exc}")
            return False
        found.clear()
        found.update(now)
        return len(found) >= expected

    if not wait_until(enough, timeout=timeout, interval=1.0):
        log(f"only {len(found)} of {expected} notifications arrived within {timeout:.0f}s")
    return found


def event_statuses(clients: AwsClients, event_ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    table = clients.names.table
    ids = list(event_ids)
    for start in range(0, len(ids), 100):
        keys = [
            {dynamo.PK: {"S": dynamo.event_pk(e)}, dynamo.SK: {"S": dynamo.EVENT_SK}}
            for e in ids[start : start + 100]
        ]
        request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            resp = clients.dynamodb.batch_get_item(RequestItems=request)
            for item in resp.get("Responses", {}).get(table, []):
                out[item["event_id"]["S"]] = item["status"]["S"]
            request = resp.get("UnprocessedKeys") or {}
    return out


def wait_settled(clients: AwsClients, event_ids: Sequence[str], timeout: float) -> bool:
    def settled() -> bool:
        try:
            statuses = event_statuses(clients, event_ids)
        except (BotoCoreError, ClientError) as exc:  # a busy emulator: ask again
            log(f"reading event statuses failed, retrying: {exc}")
            return False
        return all(statuses.get(e) in ("SUCCESS", "FAILED") for e in event_ids)

    ok = wait_until(settled, timeout=timeout, interval=0.5)
    if not ok:
        log("some events did not settle")
    return ok


def post_events(
    base: str, bodies: Sequence[dict[str, Any]], *, concurrency: int, rate: float | None = None
) -> dict[str, float]:
    """POST each body (each has its own event_id); returns {event_id: time.time() sent}.

    With `rate`, request i is started at t0 + i/rate whatever the answers (an open loop),
    else as fast as `concurrency` clients go."""
    sent: dict[str, float] = {}
    errors: list[str] = []
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with (
        httpx.Client(
            base_url=base, timeout=60, headers={"X-API-Key": API_KEY}, limits=limits
        ) as api,
        ThreadPoolExecutor(concurrency) as pool,
    ):

        def post(body: dict[str, Any]) -> None:
            at = time.time()
            resp = api.post("/events", json=body)
            with lock:
                if resp.status_code == 202:
                    sent[body["event_id"]] = at
                else:
                    errors.append(f"{resp.status_code} {resp.text[:200]}")

        t0 = time.monotonic()
        futures = []
        for i, body in enumerate(bodies):
            if rate:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            futures.append(pool.submit(post, body))
        for future in futures:
            future.result()
    if errors:
        log(f"{len(errors)} POSTs failed, e.g. {errors[0]}")
    return sent


def activity_body(user_id: str, kind: str = "comment") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "user_id": user_id,
        "data": {"actor": "Bo", "post": "p-7", "text": "Nice!"},
    }


def usage(stack: Stack, before: Snapshot, after: Snapshot, notifications: int) -> dict[str, Any]:
    """AWS calls and CPU of Herald's processes between two snapshots, per notification."""
    calls = {n: diff_calls(before.calls.get(n, {}), after.calls.get(n, {})) for n in after.calls}
    cpu = {n: after.cpu[n] - before.cpu.get(n, 0.0) for n in after.cpu}
    total_calls = sum(c for per in calls.values() for ops in per.values() for c in ops.values())
    per = max(notifications, 1)
    return {
        "notifications": notifications,
        "calls_by_process": calls,
        "aws_requests": total_calls,
        "aws_requests_per_notification": total_calls / per,
        "cpu_by_process": cpu,
        "herald_cpu_s": sum(cpu.values()),
        "herald_cpu_s_per_1000": sum(cpu.values()) / per * 1000,
    }


# --- phase 1: the API under Locust -----------------------------------------------------------


def locust(
    base: str, proc: Proc, emulators: Sequence[Proc], workdir: Path, label: str, seconds: int
) -> dict:
    """Warm up, then Locust headless; CPU of `proc` from /proc before and after."""
    with httpx.Client(base_url=base, timeout=30, headers={"X-API-Key": API_KEY}) as api:
        for _ in range(100):
            api.post("/events", json=activity_body("load-u1", "like"))
    prefix = workdir / f"locust-{label}"
    env = {
        **os.environ,
        "HERALD_API_KEY": API_KEY,
        "HERALD_LOAD_SEED_POPULATION": "0",
        "HERALD_LOAD_WAIT_SECONDS": "0",
        "HERALD_LOAD_W_ACTIVITY": "1",
        "HERALD_LOAD_W_TREND": "0",
        "HERALD_LOAD_W_CRITICAL": "0",
        "HERALD_LOAD_W_BATCH": "0",
    }
    command = [
        *(sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py")),
        *("--headless", "-u", str(LOCUST_USERS), "-r", str(LOCUST_USERS), "-t", f"{seconds}s"),
        *("--host", base, "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"),
    ]
    cpu0 = proc.cpu_seconds()
    meter = Meter(emulators)
    children0 = os.times()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    children1 = os.times()
    cpu = proc.cpu_seconds() - cpu0
    window = meter.done()
    with open(f"{prefix}_stats.csv") as stats:
        rows = {r["Name"]: r for r in csv.DictReader(stats)}
    row = rows["POST /events [activity]"]
    requests_ = int(row["Request Count"])
    failures = int(row["Failure Count"])
    accepted = requests_ - failures
    return {
        "command": (
            f"locust -f locustfile.py --headless -u {LOCUST_USERS} -r {LOCUST_USERS} "
            f"-t {seconds}s --host <api> --csv <dir>/locust-{label} --only-summary"
        ),
        "exit_code": done.returncode,
        "requests": requests_,
        "failures": failures,
        "accepted": accepted,
        "accepted_per_s": accepted / window["wall_s"],
        "locust_rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "cpu_s": cpu,
        "cpu_ms_per_accepted": cpu / max(accepted, 1) * 1000,
        "locust_cpu_s": (children1[2] + children1[3]) - (children0[2] + children0[3]),
        **window,
    }


def phase_api(stack: Stack, results: dict[str, Any], seconds: int) -> None:
    assert stack.moto is not None
    stack.fresh_aws()
    log("API: bare FastAPI app under Locust")
    bare_proc, bare_url = stack.start_bare()
    bare = locust(bare_url, bare_proc, stack.emulators, stack.workdir, "bare", seconds)
    bare["peak_rss_mb"] = bare_proc.peak_rss_mb()
    bare_proc.stop()
    log(f"API: bare app {bare['accepted_per_s']:.0f}/s, {bare['cpu_ms_per_accepted']:.3f} ms CPU")
    log("API: Herald under Locust")
    base = stack.start_herald("api", pipeline=False)
    herald = locust(base, stack.herald["api"], stack.emulators, stack.workdir, "herald", seconds)
    peaks = stack.stop_herald()
    herald["peak_rss_mb"] = peaks["api"]
    herald["cpu_ratio_to_bare"] = herald["cpu_ms_per_accepted"] / bare["cpu_ms_per_accepted"]
    log(
        f"API: Herald {herald['accepted_per_s']:.0f}/s, p50 {herald['p50_ms']:.0f} ms, "
        f"p99 {herald['p99_ms']:.0f} ms, {herald['cpu_ms_per_accepted']:.3f} ms CPU "
        f"({herald['cpu_ratio_to_bare']:.1f}x bare)"
    )
    results["api"] = {"herald": herald, "bare": bare, "users": LOCUST_USERS, "seconds": seconds}
    results["peak_rss_mb"]["api (locust run)"] = peaks["api"]


# --- phase 2: AWS requests and CPU per notification ------------------------------------------


def run_workload(
    stack: Stack,
    clients: AwsClients,
    base: str,
    bodies: list[dict[str, Any]],
    expected: int,
    concurrency: int,
    timeout: float,
) -> dict[str, Any]:
    assert stack.moto is not None
    stack.clear_sandbox()
    before = stack.snapshot()
    meter = Meter(stack.emulators)
    sent = post_events(base, bodies, concurrency=concurrency)
    arrived = wait_delivered(stack, set(sent), expected, timeout)
    wait_settled(clients, list(sent), timeout=60)
    window = meter.done()
    after = stack.snapshot()
    out = usage(stack, before, after, len(arrived))
    out.update(window)
    out["events"] = len(sent)
    out["expected"] = expected
    try:
        statuses = event_statuses(clients, list(sent))
    except (BotoCoreError, ClientError):
        statuses = {}
    out["event_statuses"] = {s: list(statuses.values()).count(s) for s in set(statuses.values())}
    return out


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
    body = {
        "event_id": str(uuid.uuid4()),
        "type": "trend.top_artist_changed",
        "topic": "bench-charts",
        "data": {"chart": "Global Top 50", "artist": "Nova"},
    }
    b = run_workload(stack, clients, base, [body], topic, concurrency=1, timeout=420)
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
    parts: dict[str, list[float]] = {name: [] for name in report.HOPS}

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


def latencies(sent: dict[str, float], arrived: dict[str, float]) -> dict[str, float]:
    values = [(at - sent[nid.split(":", 1)[0]]) * 1000 for nid, at in arrived.items()]
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
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


# --- the emulator's own costs ----------------------------------------------------------------


def phase_emulator(stack: Stack, results: dict[str, Any]) -> None:
    """What a write costs the emulator with 2,000 items in the table (1,000 users and their
    subscriptions), stock moto beside the benchmark's, and botocore's own CPU per call."""
    from bench.stack import free_port, http_ok, start_python
    from core.ledger.notification_store import NotificationStore

    out: dict[str, Any] = {}
    for label, args in (("patched", []), ("stock", ["--stock"])):
        port = free_port()
        proc = start_python(
            f"probe-{label}",
            ["-m", "localstack.emulator", "--quiet", "--port", str(port), *args],
            {},
            stack.logs,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            probe_url = f"{url}/moto-api/"
            if not wait_until(partial(http_ok, probe_url), timeout=60):
                raise RuntimeError("the probe emulator did not start")
            probe = Stack(stack.workdir, moto_url=url)
            clients = probe.fresh_aws()
            ids = seed.users(clients, "probe", 1000, lambda i: ["email"])
            seed.subscriptions(clients, "probe-topic", ids, ["email"])
            store = NotificationStore(clients.dynamodb, clients.names.table)
            event_id = seed.trend_event(clients)

            timings: dict[str, float] = {}
            cpu0, t0 = time.process_time(), time.perf_counter()
            for i in range(20):  # one conditional PutItem each
                store.create(seed.notifications(event_id, "email", 10_000 + i, 1))
            timings["put_ms"] = (time.perf_counter() - t0) / 20 * 1000
            timings["botocore_cpu_ms_per_call"] = (time.process_time() - cpu0) / 20 * 1000
            for size in (1, 10):
                t0 = time.perf_counter()
                for round_ in range(3):
                    first = 20_000 + 100 * round_ + 1000 * size
                    store.create_counted(seed.notifications(event_id, "email", first, size))
                timings[f"txn{size + 1}_ms"] = (time.perf_counter() - t0) / 3 * 1000
            out[label] = timings
        finally:
            proc.stop()
    results["emulator"] = out
    p, st = out["patched"], out["stock"]
    log(
        f"emulator: 11-item transaction {st['txn11_ms']:.0f} ms stock, "
        f"{p['txn11_ms']:.0f} ms patched; PutItem {p['put_ms']:.1f} ms"
    )


# --- main ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    from importlib.metadata import version

    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "moto": version("moto"),
        "uvicorn": version("uvicorn"),
        "locust": version("locust"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # Other work on the machine skews wall-clock figures (CPU per process less so).
        "load_average": Path("/proc/loadavg").read_text().split()[0],
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/benchmarks.md", help="the report to write")
    parser.add_argument(
        "--json",
        default="docs/benchmarks-raw/results.json",
        help="also write the raw figures here (git ignores docs/benchmarks-raw/)",
    )
    parser.add_argument(
        "--before",
        default="bench/before.json",
        help="figures of an earlier run to show beside this one (if the file exists)",
    )
    parser.add_argument("--api-seconds", type=int, default=20)
    parser.add_argument("--activity-events", type=int, default=50)
    parser.add_argument("--topic-size", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--critical", type=int, default=30)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--rule-schedulers", type=int, default=1)
    parser.add_argument("--rule-evaluators", type=int, default=2)
    parser.add_argument("--rule-eval-seconds", type=float, default=60.0)
    parser.add_argument("--rules-out", default="docs/benchmarks-rules.md")
    parser.add_argument(
        "--capacity-activity",
        type=int,
        default=500,
        help="activity events (x 3 channels) of the capacity phase's activity workload",
    )
    parser.add_argument("--capacity-steady-seconds", type=float, default=20.0)
    parser.add_argument(
        "--topic-large",
        type=int,
        default=100_000,
        help="subscribers of the capacity phase's large topic (0: leave it out)",
    )
    parser.add_argument(
        "--capacity-workloads",
        default="activity,topic,steady,topic_large",
        help="the capacity phase's workloads, comma-separated (others keep their figures "
        "from --capacity-json when it exists)",
    )
    parser.add_argument(
        "--before-capacity",
        default="bench/before_capacity.json",
        help="capacity figures of an earlier run, for the report's before column",
    )
    parser.add_argument(
        "--capacity-json",
        default="",
        help="also write this run's capacity figures here (e.g. bench/before_capacity.json)",
    )
    parser.add_argument(
        "--only",
        default="api,requests,latency,priority,emulator,rules,capacity",
        help="phases to run, comma-separated",
    )
    parser.add_argument("--command", default="make bench", help="how this run was started")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: write the report again from the figures in --json",
    )
    args = parser.parse_args(argv)
    phases = set(args.only.split(","))
    before_path = Path(args.before)
    before = json.loads(before_path.read_text()) if before_path.exists() else None
    before_cap_path = Path(args.before_capacity)
    before_cap = (
        json.loads(before_cap_path.read_text()).get("capacity")
        if before_cap_path.exists()
        else None
    )
    if args.render_only:
        saved = json.loads(Path(args.json).read_text())
        Path(args.out).write_text(report.render(saved, before, before_path.as_posix(), before_cap))
        print(report.summary(saved, before))
        return 0

    # SIGTERM (a CI timeout, kill) stops the processes this run started, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"stopped by SIGTERM after {args.only}"))
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "command": args.command, "peak_rss_mb": {}}
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    log(f"working files in {workdir}")
    stack = Stack(workdir, capacity=phases == {"capacity"})
    steps: list[tuple[str, Callable[[], None]]] = [
        ("api", lambda: phase_api(stack, results, args.api_seconds)),
        (
            "requests",
            lambda: phase_requests(stack, results, args.activity_events, args.topic_size),
        ),
        ("latency", lambda: phase_latency(stack, results, args.rate, args.latency_seconds)),
        ("priority", lambda: phase_priority(stack, results, args.backlog, args.critical)),
        ("emulator", lambda: phase_emulator(stack, results)),
        (
            "rules",
            lambda: rules.phase_rules(
                stack,
                results,
                args.rules,
                args.rule_schedulers,
                args.rule_evaluators,
                args.rule_eval_seconds,
            ),
        ),
        (
            "capacity",
            lambda: capacity.phase_capacity(
                stack,
                results,
                args.capacity_activity,
                args.topic_size,
                args.rate,
                args.capacity_steady_seconds,
                args.topic_large,
                set(args.capacity_workloads.split(",")),
            ),
        ),
    ]
    try:
        stack.start()
        for name, step in steps:
            if name in phases:
                step()
    finally:
        stack.stop()
    results["duration_s"] = time.monotonic() - started
    if "rules" in results:
        rules.write(Path(args.rules_out), results)
        log(f"wrote {args.rules_out}")
    if "capacity" in results and args.capacity_json:
        kept = Path(args.capacity_json)
        if kept.exists():  # workloads not run this time keep their earlier figures
            earlier = json.loads(kept.read_text()).get("capacity") or {}
            results["capacity"] = {**earlier, **results["capacity"]}
        saved = {"machine": results["machine"], "capacity": results["capacity"]}
        Path(args.capacity_json).write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
        log(f"wrote {args.capacity_json}")
    if phases == {"rules"}:  # the rules phase alone leaves the main report as it is
        return 0
    if phases == {"capacity"}:  # its own section of the report, the rest as it was
        out = Path(args.out)
        text = "\n".join(capacity_report.section(results["capacity"], before_cap))
        out.write_text(capacity_report.splice(out.read_text() if out.exists() else "", text))
        log(f"wrote the capacity section of {args.out}")
        return 0
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    text = report.render(results, before, before_path.as_posix(), before_cap)
    Path(args.out).write_text(text)
    print(report.summary(results, before))
    log(f"wrote {args.out} in {results['duration_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
