"""CPU that metrics and tracing add per event and per notification, measured alone.

    python -m bench.metrics_overhead [--rounds 20000]

Replays, in a tight loop, the metric calls one accepted event makes in the API (request
count, accept histogram, events accepted, group-commit round, the AWS calls' hook) and the
ones one sent notification makes in a worker (provider histogram, send count, end-to-end
histogram, the AWS calls' hook), in-process and in multiprocess mode (values in mmapped
files, as under supervisord), and the tracing helpers of one hop with an SDK provider and
no exporter. Prints CPU microseconds per event / notification and, against the figures of
docs/benchmarks.md (API CPU per accepted event, Herald CPU per notification), the share.
Starts no servers: run it anywhere, beside nothing else busy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

# From docs/benchmarks.md (the last run): what the overhead is compared to.
API_CPU_MS_PER_EVENT = 0.865
HERALD_CPU_MS_PER_NOTIFICATION = 6.67
AWS_CALLS_PER_EVENT_API = 2  # TransactWriteItems and PublishBatch shares, rounded up
AWS_CALLS_PER_NOTIFICATION = 3  # of the 2.45 requests per notification, rounded up


def _measure(rounds: int) -> dict[str, float]:
    import boto3

    from core.aws import call_metrics
    from core.catalogue.event_types import Category, Priority
    from core.catalogue.models import NotificationMessage, iso, utcnow
    from core.platform import metrics, tracing

    model: Any = boto3.client("dynamodb", region_name="us-east-1").meta.service_model
    operation = model.operation_model("TransactWriteItems")
    message = NotificationMessage(
        notification_id="e:sms:u",
        event_id="e",
        event_type="comment",
        category=Category.activity,
        priority=Priority.normal,
        channel="sms",
        recipient_id="u",
        addresses=["+14155550100"],
        content={"text": "hi"},
        created_at=iso(utcnow()),
    )
    parsed: dict[str, Any] = {}

    def api_event() -> None:
        metrics.API_REQUESTS.labels("/events", "POST", "202").inc()
        with metrics.API_ACCEPT_SECONDS.time():
            pass
        metrics.EVENTS_ACCEPTED.labels("normal").inc()
        metrics.GROUP_COMMIT_ROUND_SIZE.labels("accept").observe(1)
        for _ in range(AWS_CALLS_PER_EVENT_API):
            call_metrics.after_aws_call(operation, parsed)

    def notification() -> None:
        with metrics.PROVIDER_SECONDS.labels("sms").time():
            pass
        metrics.sent(message, "twilio")
        for _ in range(AWS_CALLS_PER_NOTIFICATION):
            call_metrics.after_aws_call(operation, parsed)

    def hop() -> None:
        with tracing.hop("e", "herald.send"), tracing.child("e", "herald.provider"):
            tracing.attributes("e")

    out = {}
    for name, fn in (("api_event", api_event), ("notification", notification)):
        fn()
        start = time.process_time()
        for _ in range(rounds):
            fn()
        out[name] = (time.process_time() - start) / rounds * 1e6
    if os.environ.get("BENCH_TRACING") == "1":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        start = time.process_time()
        for _ in range(rounds):
            hop()
        out["trace_hop"] = (time.process_time() - start) / rounds * 1e6
    return out


def _child(mode: str, rounds: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory() as directory:
        if mode == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        else:
            env["BENCH_TRACING"] = "1"
        out = subprocess.run(
            [sys.executable, "-m", "bench.metrics_overhead", "--child", "--rounds", str(rounds)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return {k: float(v) for k, v in (line.split("=") for line in out.split())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        for key, value in _measure(args.rounds).items():
            print(f"{key}={value:.3f}")
        return 0
    print(
        "| mode | metrics µs per event (API) | share of API CPU | "
        "metrics µs per notification | share of Herald CPU | tracing µs per hop |"
    )
    print("|---|---|---|---|---|---|")
    for mode in ("in-process", "multiprocess"):
        got = _child(mode, args.rounds)
        api, note = got["api_event"], got["notification"]
        hop = f"{got['trace_hop']:.1f}" if "trace_hop" in got else ""
        print(
            f"| {mode} | {api:.1f} | {api / (API_CPU_MS_PER_EVENT * 10):.2f}% | {note:.1f} | "
            f"{note / (HERALD_CPU_MS_PER_NOTIFICATION * 10):.2f}% | {hop} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
