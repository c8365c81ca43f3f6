"""Load test for Herald's API: a product posting a weighted mix of events.

With the stack running (`make run` in another terminal; it prints the development key):

    # web UI on http://127.0.0.1:8089 (loopback: [tool.locust] in pyproject.toml; add
    # --web-host 0.0.0.0 to reach it from elsewhere): pick users and spawn rate, start
    .venv/bin/locust -f locustfile.py --host http://127.0.0.1:8000

    # headless: 32 users started at once, 20 seconds, a summary and CSV files at the end
    .venv/bin/locust -f locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 32 -r 32 -t 20s --csv var/load

Every request carries `X-API-Key` (HERALD_API_KEY, by default the key `make run` prints).
A seeded population of users and topics is created through the API at test start, so
events address real recipients. Everything else comes from the environment:

| variable | default | meaning |
|---|---|---|
| HERALD_API_KEY | hk_dev_local-development-key | sent as X-API-Key (events:write, users:write) |
| HERALD_LOAD_SEED_POPULATION | 1 | 0: skip creating users and topics (they exist already) |
| HERALD_LOAD_USERS | 200 | users created (and subscribed to topics) at start |
| HERALD_LOAD_TOPICS | 5 | topics, each with every 5th user subscribed |
| HERALD_LOAD_SEED | 42 | random seed for the population and the mix |
| HERALD_LOAD_WAIT_SECONDS | 0.1 | most a user waits between requests (0: back to back) |
| HERALD_LOAD_W_ACTIVITY | 80 | weight of single activity events (normal priority) |
| HERALD_LOAD_W_TREND | 10 | weight of trend events to a topic |
| HERALD_LOAD_W_CRITICAL | 5 | weight of critical security and alert events |
| HERALD_LOAD_W_BATCH | 5 | weight of POST /events/batch with 10 activity events |

A weight of 0 leaves that request out. Any answer but 2xx counts as a failure (a 429 means
the key's rate limit, `HERALD_API_KEY_RATE_PER_SECOND`, is below the offered load).
`make bench` runs this file headless with only single activity events against Herald and
against a bare FastAPI app (`bench/bare_app.py`) to compare the CPU each spends per event.
"""

from __future__ import annotations

import os
import random
from typing import Any

from locust import FastHttpUser, between, constant, events, task

API_KEY = os.environ.get("HERALD_API_KEY", "hk_dev_local-development-key")
HEADERS = {"X-API-Key": API_KEY}
SEED_POPULATION = os.environ.get("HERALD_LOAD_SEED_POPULATION", "1") not in ("0", "false")
USERS = int(os.environ.get("HERALD_LOAD_USERS", "200"))
TOPICS = int(os.environ.get("HERALD_LOAD_TOPICS", "5"))
SEED = int(os.environ.get("HERALD_LOAD_SEED", "42"))
WAIT_SECONDS = float(os.environ.get("HERALD_LOAD_WAIT_SECONDS", "0.1"))


def weight(name: str, default: int) -> int:
    return int(os.environ.get(f"HERALD_LOAD_W_{name}", str(default)))


def user_id(i: int) -> str:
    return f"load-u{i}"


def topic(i: int) -> str:
    return f"load-topic-{i}"


@events.test_start.add_listener
def seed_population(environment: Any, **_: Any) -> None:
    """Create the users and subscriptions once, through the API like any client."""
    if not SEED_POPULATION:
        return
    import httpx

    host = environment.host or "http://127.0.0.1:8000"
    with httpx.Client(base_url=host, timeout=30, headers=HEADERS) as api:
        for i in range(USERS):
            resp = api.put(
                f"/users/{user_id(i)}",
                json={
                    "phone": f"+1415555{i:04d}",
                    "email": f"user{i}@example.com",
                    "timezone": "UTC",
                },
            )
            resp.raise_for_status()
            if i % 5 == 0:
                resp = api.put(f"/topics/{topic(i % TOPICS)}/subscribers/{user_id(i)}", json={})
                resp.raise_for_status()


def activity(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["like", "comment", "share", "follow", "mention"])
    data = {
        "actor": f"fan{rng.randrange(1000)}",
        "post": f"p-{rng.randrange(10_000)}",
        "text": "Nice!",
    }
    return {"type": kind, "user_id": user_id(rng.randrange(USERS)), "data": data}


class Product(FastHttpUser):
    """A product posting a realistic mix of events."""

    wait_time = between(min(0.01, WAIT_SECONDS), WAIT_SECONDS) if WAIT_SECONDS else constant(0)
    default_headers = HEADERS

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
