"""What a digested notification costs in DynamoDB units, metered by the emulator as AWS
would bill them (`localstack/capacity.py`).

    python -m bench.capacity_digests [--users 20] [--likes 10]

Starts its own emulator with `--capacity`, records `--likes` likes for each of `--users`
users (each user's likes one digest), then meters two steps apart:

- absorbing: the router's receives of those events (the users' profiles read, the digest's
  newest generation read, the transaction of the digest item and the event's DIGESTED, the
  close scheduled as due work once per digest) — per absorbed event;
- closing: the due handler's close of each digest (OPEN → CLOSED, the digest's own event
  recorded and published) — per digest. The digest's event is then routed and sent as any
  user event; that part is the activity workload's price (`bench/capacity.py`);
- a leading window's opener: the digest step it takes before it is routed as usual.

Prints the figures as JSON; docs/design.md ("Digests") quotes them.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.stack import http_json
from core.aws.clients import AwsClients
from core.catalogue.event_types import EVENT_TYPES, Digest
from core.catalogue.models import Event, iso, utcnow
from core.digests.items import digest_pk
from core.digests.store import DigestStore
from core.directory.profiles import Preferences, ProfileFields
from core.directory.users import UserStore
from core.ledger.event_writes import EventWrites
from core.ledger.publisher import publish_events
from core.platform.settings import Settings
from core.timing.due_work import DueStore
from listeners.batch import BatchSettler
from listeners.digest_closing import build_digest_closer
from listeners.digesting import close_work
from listeners.messages import QueueMessage
from listeners.router import Router
from localstack.capacity import TABLE
from localstack.provision import provision

DIGEST = Digest(window="10m", key="post", max_items=1000)
WCU_USD_PER_MILLION = 0.625
RCU_USD_PER_MILLION = 0.125


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def units(url: str) -> dict[str, Any]:
    """Write and read units since the last reset (the table's and its indexes', and by
    operation), and the DynamoDB requests by operation."""
    meter = http_json("GET", f"{url}/_capacity?top=1")["dynamodb"]
    out: dict[str, Any] = {"wcu": 0.0, "rcu": 0.0, "wcu_indexes": 0.0, "by_operation": {}}
    for targets in meter["tables"].values():
        for target, figures in targets.items():
            out["wcu"] += float(figures["wcu"])
            out["rcu"] += float(figures["rcu"])
            if target != TABLE:
                out["wcu_indexes"] += float(figures["wcu"])
            for op, used in figures["by_operation"].items():
                into = out["by_operation"].setdefault(op, {"wcu": 0.0, "rcu": 0.0})
                into["wcu"] += float(used["wcu"])
                into["rcu"] += float(used["rcu"])
    out["requests"] = dict(meter["requests"])
    return out


def per(figures: dict[str, Any], n: int) -> dict[str, Any]:
    """`figures` divided by `n`, rounded for the report."""
    out: dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            out[key] = per(value, n)
        else:
            out[key] = round(float(value) / n, 3)
    return out


def likes(
    settings: Settings,
    clients: AwsClients,
    users: int,
    per_user: int,
    digest: Digest | None = DIGEST,
    run: str = "dig",
) -> list[Event]:
    store = UserStore(clients.dynamodb, clients.names.table)
    writes = EventWrites(clients.dynamodb, clients.names.table)
    spec = EVENT_TYPES["like"]
    events = []
    for u in range(users):
        user_id = f"{run}-{u}"
        store.put_profile(user_id, ProfileFields(email=f"{user_id}@example.com"))
        store.set_preferences(
            user_id, Preferences.model_validate({"categories": {"activity": ["email"]}})
        )
        for i in range(per_user):
            events.append(
                Event(
                    event_id=str(uuid.uuid4()),
                    type="like",
                    category=spec.category,
                    priority=spec.priority,
                    user_id=user_id,
                    data={"actor": f"fan-{i}", "post": "p-1"},
                    created_at=iso(utcnow()),
                    digest=digest,
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


def measure(url: str, users: int, per_user: int) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        AWS_ENDPOINT_URL=url,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        resource_prefix="bench-digests",
        wait_time_seconds=0,
    )
    clients = AwsClients(settings)
    provision(settings, clients)
    events = likes(settings, clients, users, per_user)
    http_json("DELETE", f"{url}/_capacity")
    routed = route_all(settings, clients)
    absorbing = units(url)
    store = DigestStore(clients.dynamodb, clients.names.table)
    heads = {digest_pk(e, DIGEST) for e in events}
    newest = [store.newest(pk) for pk in heads]
    http_json("DELETE", f"{url}/_capacity")
    closer = build_digest_closer(settings, clients)
    for head in newest:
        assert head is not None and head.count == per_user, head
        closer(close_work(head))
    closing = units(url)
    n, d = len(events), len(newest)
    per_event, per_digest = per(absorbing, n), per(closing, d)
    # A leading window's opener is routed as usual; what the digest step adds to that
    # (its read, the digest item's create with the mark on the event, the close's due item).
    leading = Digest(window="10m", key="post", leading=True)
    openers = likes(settings, clients, users, 1, leading, "lead")
    due = DueStore(clients.dynamodb, clients.names.table, settings.due_shards)
    http_json("DELETE", f"{url}/_capacity")
    for event in openers:
        result = store.absorb(event, leading, lambda head: due.schedule(close_work(head)))
        assert result.outcome == "lead", result
    opener_extra = per(units(url), len(openers))
    usd = lambda u: u["wcu"] * WCU_USD_PER_MILLION + u["rcu"] * RCU_USD_PER_MILLION  # noqa: E731
    return {
        "events": n,
        "routed": routed,
        "digests": d,
        "per_absorbed_event": per_event,
        "per_digest_close": per_digest,
        "usd_per_million_absorbed_events": usd(per_event),
        "usd_per_million_digests_closed": usd(per_digest),
        "leading_opener_digest_step": opener_extra,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--likes", type=int, default=10, help="likes per user (one digest)")
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
        print(json.dumps(measure(url, args.users, args.likes), indent=2))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
