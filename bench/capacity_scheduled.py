"""What a scheduled (deferred) notification costs in DynamoDB units, metered by the
emulator as AWS would bill them (`localstack/capacity.py`).

    python -m bench.capacity_scheduled [--users 100]

Starts its own emulator with `--capacity` and routes one trend event (push only) to each of
`--users` users, metering three steps apart:

- routing now: users without quiet hours, the event's push queued at once (the baseline);
- routing deferred: users in quiet hours, the push recorded SCHEDULED with its due item and
  the event parked SCHEDULED;
- releasing: the due sender's pass when they come due (the shard's reads and lease, the
  handler's reads of record, event and profile, the release transaction, the item's
  delete).

A scheduled notification costs (deferred minus now) + releasing more than one sent at once;
the worker's claim and outcome afterwards are the same for both. Prints the figures as
JSON; docs/design.md (§9) and docs/benchmarks.md quote them.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.stack import http_json
from core.aws.clients import AwsClients
from core.catalogue.event_types import EVENT_TYPES
from core.catalogue.models import Event, iso, utcnow
from core.directory.profiles import Preferences, ProfileFields
from core.directory.users import UserStore
from core.ledger.event_writes import EventWrites
from core.ledger.publisher import publish_events
from core.platform.settings import Settings
from core.timing.due_work import DueStore
from listeners.batch import BatchSettler
from listeners.due_handlers import build_due_handlers
from listeners.due_sender import DueSender
from listeners.messages import QueueMessage
from listeners.router import Router
from localstack.provision import provision

WCU_USD_PER_MILLION = 0.625
RCU_USD_PER_MILLION = 0.125
TYPE = "trend.top_artist_changed"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def units(url: str) -> dict[str, Any]:
    """Write and read units since the last reset, and DynamoDB requests by operation."""
    meter = http_json("GET", f"{url}/_capacity?top=1")["dynamodb"]
    out: dict[str, Any] = {"wcu": 0.0, "rcu": 0.0}
    for targets in meter["tables"].values():
        for figures in targets.values():
            out["wcu"] += float(figures["wcu"])
            out["rcu"] += float(figures["rcu"])
    out["requests"] = float(sum(meter["requests"].values()))
    return out


def per(figures: dict[str, float], n: int) -> dict[str, float]:
    return {k: round(float(v) / n, 3) for k, v in figures.items()}


def users_and_events(clients: AwsClients, prefix: str, n: int, quiet: bool) -> list[Event]:
    store = UserStore(clients.dynamodb, clients.names.table)
    writes = EventWrites(clients.dynamodb, clients.names.table)
    spec = EVENT_TYPES[TYPE]
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(minutes=30)).strftime("%H:%M"),
        "end": (now + timedelta(minutes=2)).strftime("%H:%M"),
    }
    events = []
    for u in range(n):
        user_id = f"{prefix}-{u}"
        store.put_profile(
            user_id,
            ProfileFields(
                push_endpoints=[f"arn:aws:sns:us-east-1:123456789012:endpoint/GCM/b/{u}"]
            ),
        )
        prefs: dict[str, Any] = {"categories": {"trend": ["push"]}}
        if quiet:
            prefs["quiet_hours"] = window
        store.set_preferences(user_id, Preferences.model_validate(prefs))
        events.append(
            Event(
                event_id=str(uuid.uuid4()),
                type=TYPE,
                category=spec.category,
                priority=spec.priority,
                user_id=user_id,
                data={"chart": "Top 50", "artist": "Nova"},
                created_at=iso(utcnow()),
            )
        )
    for start in range(0, len(events), 25):
        chunk = events[start : start + 25]
        assert writes.put_new_batch([writes.new_record(e) for e in chunk]) == [None] * len(chunk)
        assert publish_events(clients.sns, clients.topic_arn, chunk) == {}
    return events


def route_all(settings: Settings, clients: AwsClients) -> int:
    queue = clients.names.router_queue("normal")
    router = Router(settings, clients)
    settler = BatchSettler(clients.sqs, clients.queue_url)
    routed = 0
    while True:
        raw = clients.sqs.receive_message(
            QueueUrl=clients.queue_url(queue),
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        if not raw:
            return routed
        messages = [QueueMessage.from_sqs(queue, m) for m in raw]
        settler.settle(messages, router(messages))
        routed += len(messages)


def measure(url: str, n: int) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        AWS_ENDPOINT_URL=url,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        resource_prefix="bench-scheduled",
        wait_time_seconds=0,
    )
    clients = AwsClients(settings)
    provision(settings, clients)
    steps: dict[str, dict[str, float]] = {}
    for name, quiet in (("routing_now", False), ("routing_deferred", True)):
        users_and_events(clients, name, n, quiet)
        http_json("DELETE", f"{url}/_capacity")
        assert route_all(settings, clients) == n
        steps[name] = per(units(url), n)
    due = DueStore(clients.dynamodb, clients.names.table, settings.due_shards)
    later = datetime.now(UTC) + timedelta(minutes=3)
    sender = DueSender(
        settings, clients, build_due_handlers(settings, clients, due), clock=lambda: later
    )
    http_json("DELETE", f"{url}/_capacity")
    handed = sender.run_pass().handed
    sender.close()
    assert handed == n, handed
    steps["releasing"] = per(units(url), n)
    extra = {
        k: round(steps["routing_deferred"][k] - steps["routing_now"][k] + steps["releasing"][k], 3)
        for k in ("wcu", "rcu", "requests")
    }
    usd = extra["wcu"] * WCU_USD_PER_MILLION + extra["rcu"] * RCU_USD_PER_MILLION
    return {
        "notifications": n,
        "per_notification": steps,
        "scheduled_extra_per_notification": extra,
        "usd_per_million_extra": round(usd, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "localstack.emulator", "--capacity", "--quiet"]
    proc = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                http_json("GET", f"{url}/_capacity")
                break
            except OSError:
                time.sleep(0.1)
        print(json.dumps(measure(url, args.users), indent=2))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
