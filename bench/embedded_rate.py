"""The rate `make run`'s embedded stack sustains: activity events at fixed offered rates.

    python -m bench.embedded_rate [--rates 10,20,30] [--seconds 60] [--emulators 1|2|both]

The stack is started as `make run` starts it (`bench/embedded_stack.py`): supervisord
with supervisord.conf and the environment the Makefile exports for `run` (read back
through `make local-env`, with free loopback ports), in a temporary folder that holds its
var/ (logs, metrics, socket), so a `make run` of the same checkout is left alone.
`--emulators 1` drops `AWS_ENDPOINT_URL_DYNAMODB` so DynamoDB, SNS and SQS share one
emulator process, as before DynamoDB had its own; `both` runs 1, then 2.

Each rate runs on a fresh stack, so one rate's backlog is not counted in the next (past a
rate not kept up, higher ones are skipped unless `--keep-going`). Users with SMS, email and
chat contacts (through the API) receive `comment` events posted open-loop at each rate (a
POST is due every 1/rate s whatever earlier ones do), so each event is three
notifications. Per rate it reports notifications delivered per second
(first arrival at the provider sandbox) against those offered, over the whole window and
its second half (the steady state), the backlog when posting stops and how long it takes
to clear, end-to-end p50/p99 (POST sent to provider reached), and the CPU busy share of
each emulator process and of Herald's programs (of one core, from /proc) beside the whole
machine's (other work on it slows the stack down).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.embedded_stack import EmbeddedStack, embedded_stack
from bench.stack import CLOCK_TICKS, http_json

CHANNELS = ("sms", "email", "chat")
PROVIDERS = {"twilio": "sms", "sendgrid": "email", "slack": "chat"}
SLACK_WEBHOOK = "https://hooks.slack.com/services/T0RATE/B0RATE/rate"
USERS = 100
#: Kept up: steady delivery at least this share of the offered rate...
KEPT_UP_SHARE = 0.95
#: ...and every notification at its provider within this many seconds.
KEPT_UP_P99_SECONDS = 10.0
DRAIN_SECONDS = 90.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- measuring ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot: what else the machine was doing."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def cpu_by_program(stack: EmbeddedStack) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, (_, pid) in stack.status().items() if pid}


def seed_users(api: httpx.Client) -> list[str]:
    users = []
    for index in range(USERS):
        user_id = f"rate-{uuid.uuid4().hex[:8]}"
        contacts = {
            "phone": f"+1415{index:07d}",
            "email": f"rate{index}@example.com",
            "chat": {"format": "slack", "url": SLACK_WEBHOOK},
            "timezone": "UTC",
        }
        api.put(f"/users/{user_id}", json=contacts).raise_for_status()
        prefs = {"categories": {"activity": list(CHANNELS)}}
        api.put(f"/users/{user_id}/preferences", json=prefs).raise_for_status()
        users.append(user_id)
    return users


def post_open_loop(
    api: httpx.Client, users: list[str], rate: float, seconds: float
) -> tuple[dict[str, float], int]:
    """POST an event every 1/rate s for `seconds`; (event id -> time its POST was sent,
    failed POSTs)."""
    posted: dict[str, float] = {}
    failed: list[str] = []
    lock = threading.Lock()

    def post(index: int) -> None:
        event_id = str(uuid.uuid4())
        body = {
            "event_id": event_id,
            "type": "comment",
            "user_id": users[index % len(users)],
            "data": {"actor": "Bo", "post": "p-7", "text": "Nice!"},
        }
        sent = time.time()
        try:
            ok = api.post("/events", json=body).status_code == 202
        except httpx.HTTPError:
            ok = False
        with lock:
            if ok:
                posted[event_id] = sent
            else:
                failed.append(event_id)

    start = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        for index in range(int(rate * seconds)):
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(post, index)
    return posted, len(failed)


def arrivals(stack: EmbeddedStack, posted: dict[str, float]) -> dict[str, float]:
    """Notification id -> first time a provider accepted it, for the posted events."""
    first: dict[str, float] = {}
    for record in http_json("GET", f"{stack.sandbox_url}/sandbox/messages", timeout=120):
        nid = record.get("notification_id") or ""
        status = record.get("status") or 0
        if record.get("provider") not in PROVIDERS or not 200 <= status < 300:
            continue
        if nid.split(":", 1)[0] in posted:
            first[nid] = min(first.get(nid, float("inf")), float(record["received_at"]))
    return first


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure_rate(
    stack: EmbeddedStack, api: httpx.Client, users: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    http_json("DELETE", f"{stack.sandbox_url}/sandbox/messages")
    calls_before = stack.calls()
    cpu_before, machine_before, t0 = cpu_by_program(stack), machine_busy(), time.time()
    posted, failed = post_open_loop(api, users, rate, seconds)
    t_end = time.time()
    cpu_after, machine_after = cpu_by_program(stack), machine_busy()
    machine = (machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1])
    arrived = arrivals(stack, posted)
    offered = len(posted) * len(CHANNELS)
    in_window = [t for t in arrived.values() if t <= t_end]
    half = t0 + (t_end - t0) / 2
    steady = sum(1 for t in in_window if t > half) / (t_end - half)
    backlog = offered - len(in_window)
    drain_deadline = time.monotonic() + DRAIN_SECONDS
    while len(arrived) < offered and time.monotonic() < drain_deadline:
        time.sleep(5)
        arrived = arrivals(stack, posted)
    drained_at = max(arrived.values(), default=t_end)
    calls_after = stack.calls()
    latencies = [at - posted[nid.split(":", 1)[0]] for nid, at in arrived.items()]
    window = t_end - t0
    busy = {n: (cpu_after[n] - cpu_before.get(n, 0.0)) / window for n in cpu_after}
    emulators = {n: round(b, 3) for n, b in busy.items() if n.startswith("emulator")}
    herald = {n: b for n, b in busy.items() if not n.startswith(("emulator", "sandbox"))}
    p99 = percentile(latencies, 0.99)
    result = {
        "events_per_second": rate,
        "seconds": round(window, 1),
        "events_posted": len(posted),
        "posts_failed": failed,
        "offered_per_second": round(offered / window, 1),
        "delivered_per_second": round(len(in_window) / window, 1),
        "steady_delivered_per_second": round(steady, 1),
        "backlog_at_end": backlog,
        "undelivered_after_drain": offered - len(arrived),
        "drain_seconds": round(max(0.0, drained_at - t_end), 1),
        "p50_seconds": percentile(latencies, 0.5),
        "p99_seconds": p99,
        "emulator_busy": emulators,
        "sandbox_busy": round(busy.get("sandbox", 0.0), 3),
        "machine_busy": round(machine, 3),
        "cores": os.cpu_count(),
        "herald_busy": round(sum(herald.values()), 3),
        "herald_cpu_ms_per_notification": round(
            1000 * sum(herald.values()) * window / max(1, len(in_window)), 2
        ),
    }
    if calls_after:
        per = {
            op: (n - calls_before.get(op, 0)) / max(1, len(arrived))
            for op, n in calls_after.items()
        }
        result["aws_calls_per_notification"] = {
            op: round(v, 3) for op, v in sorted(per.items()) if v > 0
        }
    result["kept_up"] = bool(
        steady >= KEPT_UP_SHARE * offered / window
        and p99 is not None
        and p99 <= KEPT_UP_P99_SECONDS
        and result["undelivered_after_drain"] == 0
    )
    return result


def run_config(
    emulators: int, rates: list[float], seconds: float, keep_going: bool, count_calls: bool
) -> list[dict[str, Any]]:
    """Each rate on a stack of its own, so no backlog of one rate is counted in the next;
    past the first rate that is not kept up, the higher ones are skipped unless asked."""
    results: list[dict[str, Any]] = []
    for rate in sorted(rates):
        if results and not results[-1]["kept_up"] and not keep_going:
            log(f"{emulators} emulator(s): {rate:g} events/s skipped (behind at a lower rate)")
            continue
        log(f"starting the embedded stack with {emulators} emulator process(es)")
        with embedded_stack(emulators, count_calls) as stack:
            key = stack.env["HERALD_BOOTSTRAP_API_KEY"]
            headers = {"X-API-Key": key}
            with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as api:
                users = seed_users(api)
                log(f"{emulators} emulator(s): {rate:g} events/s for {seconds:g} s")
                result = {"emulators": emulators, **measure_rate(stack, api, users, rate, seconds)}
        log(json.dumps(result))
        results.append(result)
    return results


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| emulator processes | events/s | offered notif./s | delivered/s (steady) "
        "| backlog at end | drain s | p50 s | p99 s | emulator busy | Herald busy "
        "| machine busy | kept up |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        busy = ", ".join(f"{n} {b:.0%}" for n, b in sorted(r["emulator_busy"].items()))
        lines.append(
            f"| {r['emulators']} | {r['events_per_second']:g} | {r['offered_per_second']} "
            f"| {r['delivered_per_second']} ({r['steady_delivered_per_second']}) "
            f"| {r['backlog_at_end']} | {r['drain_seconds']} | {fmt(r['p50_seconds'])} "
            f"| {fmt(r['p99_seconds'])} | {busy} | {r['herald_busy']:.0%} "
            f"| {r['machine_busy']:.0%} | {'yes' if r['kept_up'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,20,30", help="events per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="posting window per rate")
    parser.add_argument("--emulators", choices=("1", "2", "both"), default="both")
    parser.add_argument(
        "--keep-going", action="store_true", help="run higher rates after one not kept up"
    )
    parser.add_argument(
        "--calls",
        action="store_true",
        help="count Herald's AWS calls per notification (HERALD_AWS_CALL_LOG)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    configs = [1, 2] if args.emulators == "both" else [int(args.emulators)]
    results = [
        r
        for emulators in configs
        for r in run_config(emulators, rates, args.seconds, args.keep_going, args.calls)
    ]
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
