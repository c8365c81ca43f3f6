"""Load test for Herald's API.

    make run                                    # in another terminal
    .venv/bin/locust -f locustfile.py --host http://127.0.0.1:8000            # web UI :8089
    .venv/bin/locust -f locustfile.py --host http://127.0.0.1:8000 --headless -u 32 -r 8 -t 1m

A seeded population of users and topics is created through the API at test start, so
events address real recipients. Weights come from the environment:

| variable | default | meaning |
|---|---|---|
| HERALD_LOAD_USERS | 200 | users created (and subscribed to topics) at start |
| HERALD_LOAD_TOPICS | 5 | topics, each with every 5th user subscribed |
| HERALD_LOAD_SEED | 42 | random seed for the population and the mix |
| HERALD_LOAD_W_ACTIVITY | 80 | weight of single activity events (normal priority) |
| HERALD_LOAD_W_TREND | 10 | weight of trend events to a topic |
| HERALD_LOAD_W_CRITICAL | 5 | weight of critical security and alert events |
| HERALD_LOAD_W_BATCH | 5 | weight of POST /events/batch with 10 activity events |
"""

from __future__ import annotations

import os
import random
from typing import Any

from locust import HttpUser, between, events, task

USERS = int(os.environ.get("HERALD_LOAD_USERS", "200"))
TOPICS = int(os.environ.get("HERALD_LOAD_TOPICS", "5"))
SEED = int(os.environ.get("HERALD_LOAD_SEED", "42"))


def weight(name: str, default: int) -> int:
    return int(os.environ.get(f"HERALD_LOAD_W_{name}", str(default)))


def user_id(i: int) -> str:
    return f"load-u{i}"


def topic(i: int) -> str:
    return f"load-topic-{i}"


@events.test_start.add_listener
def seed_population(environment: Any, **_: Any) -> None:
    """Create the users and subscriptions once, through the API like any client."""
    import httpx

    host = environment.host or "http://127.0.0.1:8000"
    with httpx.Client(base_url=host, timeout=30) as api:
        for i in range(USERS):
            api.put(
                f"/users/{user_id(i)}",
                json={
                    "phone": f"+1415555{i:04d}",
                    "email": f"user{i}@example.com",
                    "timezone": "UTC",
                },
            )
            if i % 5 == 0:
                api.put(f"/topics/{topic(i % TOPICS)}/subscribers/{user_id(i)}", json={})


def activity(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["like", "comment", "share", "follow", "mention"])
    data = {
        "actor": f"fan{rng.randrange(1000)}",
        "post": f"p-{rng.randrange(10_000)}",
        "text": "Nice!",
    }
    return {"type": kind, "user_id": user_id(rng.randrange(USERS)), "data": data}


class Product(HttpUser):
    """A product posting a realistic mix of events."""

    wait_time = between(0.01, 0.1)

    def on_start(self) -> None:
        self.rng = random.Random(SEED + id(self))

    @task(weight("ACTIVITY", 80))
    def post_activity(self) -> None:
        self.client.post("/events", json=activity(self.rng), name="POST /events [activity]")

    @task(weight("TREND", 10))
    def post_trend(self) -> None:
        body = {
            "type": "trend.top_artist_changed",
            "topic": topic(self.rng.randrange(TOPICS)),
            "data": {"chart": "Global Top 50", "artist": f"Artist {self.rng.randrange(100)}"},
        }
        self.client.post("/events", json=body, name="POST /events [trend]")

    @task(weight("CRITICAL", 5))
    def post_critical(self) -> None:
        if self.rng.random() < 0.5:
            body = {
                "type": "security.login_alert",
                "user_id": user_id(self.rng.randrange(USERS)),
                "data": {"ip": "203.0.113.9", "device": "Firefox on Linux"},
            }
        else:
            body = {
                "type": "alert.sla_breach",
                "topic": topic(self.rng.randrange(TOPICS)),
                "data": {"service": "ingest", "sla": "99.9%"},
            }
        self.client.post("/events", json=body, name="POST /events [critical]")

    @task(weight("BATCH", 5))
    def post_batch(self) -> None:
        batch = {"events": [activity(self.rng) for _ in range(10)]}
        self.client.post("/events/batch", json=batch, name="POST /events/batch")
