"""A silence's regular expression cannot hold up the router: RE2 matches in linear time.

A backtracking engine takes exponential time on `a*a*…a*b` against a run of `a`s while
holding the GIL, so a timer in the same process could not even stop it: the matching is
tried in a child process, given a generous bound.
"""

from __future__ import annotations

import subprocess
import sys

from fastapi.testclient import TestClient

from listeners.router import Router
from tests.alerting.conftest import Clock, add_user, channel_messages, route_pending
from tests.conftest import Stack

HOSTILE = "a*" * 20 + "b"
MATCH_BOUND_SECONDS = 60  # RE2 answers in microseconds; a backtracking engine never does

CHILD = f"""
from alerting.silences import Matcher
matcher = Matcher(name="dedupe_key", op="=~", value={HOSTILE!r})
print(matcher.matches({{"dedupe_key": "a" * 64}}))
"""


def test_a_backtracking_pattern_matches_in_bounded_time() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=MATCH_BOUND_SECONDS,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_a_hostile_silence_leaves_routing_working(
    stack: Stack, client: TestClient, router: Router, clock: Clock
) -> None:
    add_user(stack, "oncall", phone="+14155550123")
    silence = client.put(
        "/silences",
        json={
            "matchers": [{"name": "dedupe_key", "op": "=~", "value": HOSTILE}],
            "ends_at": "2100-01-01T00:00:00Z",
        },
    )
    assert silence.status_code == 200, silence.text
    for key in ("a" * 64, "orders-db", "a" * 40 + "b"):
        resp = client.post(
            "/events",
            json={
                "type": "alert.sla_breach",
                "user_id": "oncall",
                "dedupe_key": key,
                "data": {"service": key, "sla": "15 min freshness"},
            },
        )
        assert resp.status_code == 202, resp.text
    route_pending(stack, router)
    # The two keys the pattern does not match notify; the one it matches is muted.
    assert len(channel_messages(stack, "sms")) == 2
