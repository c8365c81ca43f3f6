"""Load for the fault-injection scenarios: users, topic subscriptions and events posted
through the real API, and the notifications each accepted event must end in.

Every event is posted with an `Idempotency-Key`; a 503 is retried with the same key after
its Retry-After, as a well-behaved producer would, so "accepted" means the API answered
202 (or 200 for a repeat) and nothing else.

Users, subscriptions and a scenario's events are sent a few requests at a time, as many
clients would send them: one request after another spent most of a scenario's setup
waiting on round trips (and a lone event on the API's accept linger), seconds the faults
then were not injected into anything.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from tests.chaos.harness import API_HEADERS

COMMENT_DATA = {"actor": "Ana", "post": "p-1", "text": "Lovely!"}
TREND_DATA = {"chart": "Global Top 50", "artist": "Nova"}

#: Requests in flight at once while a scenario sets up or posts its events: enough to
#: overlap round trips and fill the API's group commit, few enough to leave the machine's
#: cores to the processes under test.
CONCURRENCY = 6

T = TypeVar("T")


def each(work: Callable[[T], object], items: Iterable[T]) -> None:
    """`work` on every item, `CONCURRENCY` at a time; the first exception is raised."""
    with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="workload") as pool:
        for _ in pool.map(work, items):
            pass


def api_client(base_url: str, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=API_HEADERS, timeout=timeout)


@dataclass(frozen=True)
class User:
    user_id: str
    phone: str
    email: str
    chat_url: str


def contacts(run: str, index: int) -> User:
    """Distinct, valid contacts per user: E.164 phone, email and a Slack webhook URL."""
    return User(
        user_id=f"{run}-u{index}",
        phone=f"+1415{index:07d}",
        email=f"{run}.u{index}@example.com",
        chat_url=f"https://hooks.slack.com/services/T{run}/B{index}/secret{index}",
    )


def create_users(api: httpx.Client, run: str, count: int, channels: Sequence[str]) -> list[User]:
    """`count` users with every contact, who want activity events on `channels`."""
    users = [contacts(run, i) for i in range(count)]

    def create(user: User) -> None:
        resp = api.put(
            f"/users/{user.user_id}",
            json={
                "phone": user.phone,
                "email": user.email,
                "chat": {"format": "slack", "url": user.chat_url},
                "timezone": "UTC",
            },
        )
        resp.raise_for_status()
        resp = api.put(
            f"/users/{user.user_id}/preferences",
            json={"categories": {"activity": list(channels), "trend": list(channels)}},
        )
        resp.raise_for_status()

    each(create, users)
    return users


def subscribe(
    api: httpx.Client, topic: str, users: Iterable[User], channels: Sequence[str]
) -> None:
    def add(user: User) -> None:
        resp = api.put(
            f"/topics/{topic}/subscribers/{user.user_id}", json={"channels": list(channels)}
        )
        resp.raise_for_status()

    each(add, users)


@dataclass
class Attempt:
    """One POST /events: when it started, how long it took, what it answered."""

    started: float
    seconds: float
    status: int | None
    retry_after: str | None = None


@dataclass
class Posted:
    """Accepted events and the notification ids each must end in."""

    expected: dict[str, list[str]] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def notification_ids(self) -> list[str]:
        return [n for ids in self.expected.values() for n in ids]

    def accept(self, event_id: str, notification_ids: list[str]) -> None:
        with self._lock:
            self.expected[event_id] = notification_ids

    def attempted(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)


def post_event(
    api: httpx.Client,
    posted: Posted,
    body: dict[str, Any],
    recipients: Sequence[str],
    channels: Sequence[str],
    give_up_after: float = 120,
) -> str | None:
    """POST one event until accepted (5xx → wait Retry-After, same key); its id or None."""
    key = uuid.uuid4().hex
    deadline = time.monotonic() + give_up_after
    while True:
        started = time.time()
        try:
            resp = api.post("/events", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            posted.attempted(Attempt(started, time.time() - started, None))
            if time.monotonic() >= deadline:
                posted.rejected.append(f"{type(exc).__name__}: {exc}")
                return None
            time.sleep(1)
            continue
        retry_after = resp.headers.get("Retry-After")
        posted.attempted(Attempt(started, time.time() - started, resp.status_code, retry_after))
        if resp.status_code in (200, 202):
            event_id = str(resp.json()["event_id"])
            posted.accept(event_id, [f"{event_id}:{c}:{r}" for r in recipients for c in channels])
            return event_id
        if resp.status_code >= 500 and time.monotonic() < deadline:
            time.sleep(float(retry_after or 1))
            continue
        posted.rejected.append(f"{resp.status_code}: {resp.text[:200]}")
        return None


def post_user_events(
    api: httpx.Client,
    posted: Posted,
    users: Sequence[User],
    channels: Sequence[str],
    give_up_after: float = 120,
) -> None:
    """One `comment` event per user (a few posted at a time)."""

    def post(user: User) -> None:
        post_event(
            api,
            posted,
            {"type": "comment", "user_id": user.user_id, "data": COMMENT_DATA},
            [user.user_id],
            channels,
            give_up_after,
        )

    if len(users) == 1:  # a producer's pace, or a probe: on this thread
        post(users[0])
    else:
        each(post, users)


class Producer(threading.Thread):
    """Posts one event per user at a steady pace in the background."""

    def __init__(
        self,
        api: httpx.Client,
        posted: Posted,
        users: Sequence[User],
        channels: Sequence[str],
        interval: float,
    ) -> None:
        super().__init__(daemon=True, name="producer")
        self.api = api
        self.posted = posted
        self.users = users
        self.channels = channels
        self.interval = interval
        self.started_events = 0

    def run(self) -> None:
        for user in self.users:
            began = time.monotonic()
            self.started_events += 1
            post_user_events(self.api, self.posted, [user], self.channels)
            time.sleep(max(0.0, self.interval - (time.monotonic() - began)))
