"""Posting events to Herald's API and waiting for what follows: the notifications the
provider sandbox received (`wait_delivered`), the events' final status (`wait_settled`),
and a whole workload from POST to settled, metered (`run_workload`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from bench import seed
from bench.meter import Meter, usage
from bench.stack import API_KEY, Stack, wait_until
from core.aws import dynamo
from core.aws.clients import AwsClients


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def activity_body(user_id: str, kind: str = "comment") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "user_id": user_id,
        "data": {"actor": "Bo", "post": "p-7", "text": "Nice!"},
    }


def trend_body(topic: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "trend.top_artist_changed",
        "topic": topic,
        "data": {"chart": "Global Top 50", "artist": "Nova"},
    }


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


def run_workload(
    stack: Stack,
    clients: AwsClients,
    base: str,
    bodies: list[dict[str, Any]],
    expected: int,
    concurrency: int,
    timeout: float,
) -> dict[str, Any]:
    """Post `bodies`, wait for `expected` notifications and the events' final status;
    Herald's AWS calls and CPU per notification, with the machine's and emulators' CPU."""
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


def warm_up(stack: Stack, clients: AwsClients, base: str, prefix: str, events: int) -> None:
    """`events` activity events (sms, email, chat) through the running processes, not
    measured: a process's one-time work (imports an SDK defers to its first call, templates
    compiled on first use, connections opened) is not a notification's cost in a running
    service."""
    users = seed.users(clients, prefix, events, lambda i: ["sms", "email", "chat"])
    log(f"{prefix}: {events} warm-up events, not measured")
    run_workload(stack, clients, base, [activity_body(u) for u in users], events * 3, 8, 600)
