"""Fault injection against the whole stack run by supervisord.

Each scenario loads the pipeline, injects one kind of fault while the work is in flight,
lets the pipeline settle and then accounts for every accepted notification (see
`tests.chaos.accounting`). Every scenario asserts: nothing lost, no provider duplicate
beyond the documented at-least-once window, no SENT record without a provider receipt,
and every process running again. The outcomes are printed as a table at the end.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any

import pytest

from core.aws.clients import AwsClients
from tests.chaos.accounting import Outcome, event_item, tally, wait_settled
from tests.chaos.harness import ChaosStack
from tests.chaos.report import RESULTS
from tests.chaos.scale import Scale
from tests.chaos.timing_workload import (
    defer_until,
    due_minute,
    post_waiting_events,
    wait_released,
)
from tests.chaos.workload import (
    TREND_DATA,
    Posted,
    Producer,
    api_client,
    create_users,
    post_event,
    post_user_events,
    subscribe,
)
from tests.support import wait_until

pytestmark = pytest.mark.timeout(1200)

TWO_CHANNELS = ("sms", "email")
THREE_CHANNELS = ("sms", "email", "chat")
PROVIDER_OF = {"sms": "twilio", "email": "sendgrid", "chat": "slack"}


def settle_and_tally(stack: ChaosStack, scale: Scale, scenario: str, posted: Posted) -> Outcome:
    settled = wait_settled(stack, scale.settle_seconds)
    outcome = tally(stack, scenario, posted.expected, stack.kills)
    if not settled:
        outcome.notes.append(f"queues not drained after {scale.settle_seconds:.0f}s")
    outcome.notes += [f"event not settled: {e}" for e in outcome.unsettled_events[:3]]
    RESULTS.append(outcome)
    return outcome


def assert_clean(stack: ChaosStack, outcome: Outcome, posted: Posted) -> None:
    assert not posted.rejected, posted.rejected[:5]
    assert outcome.notifications > 0
    assert outcome.lost == [], outcome.lost[:20]
    assert outcome.beyond_window == [], outcome.beyond_window[:20]
    assert outcome.sent_without_receipt == [], outcome.sent_without_receipt[:20]
    assert outcome.unexpected == [], outcome.unexpected[:20]
    assert wait_until(stack.all_running, timeout=30), stack.processes()


def in_flight(stack: ChaosStack, provider: str) -> bool:
    """A provider request has arrived and not been answered yet: its worker is mid-batch."""
    messages = stack.sandbox("GET", f"/sandbox/messages?provider={provider}")
    return any(m["status"] is None for m in messages)


def test_workers_killed_mid_batch(chaos: ChaosStack, scale: Scale) -> None:
    # Slow providers keep each batch in flight long enough to be killed in the middle.
    chaos.sandbox("POST", "/sandbox/faults", {"latency_ms": 400})
    posted = Posted()
    with api_client(chaos.api_url) as api:
        users = create_users(api, "kill", scale.kill_events, TWO_CHANNELS)
        post_user_events(api, posted, users, TWO_CHANNELS)
    mid_batch = 0
    for attempt in range(scale.worker_kills):
        channel = TWO_CHANNELS[attempt % 2]
        provider = PROVIDER_OF[channel]
        if not wait_until(partial(in_flight, chaos, provider), timeout=20):
            break
        chaos.kill9(chaos.names(f"worker-{channel}")[0])
        mid_batch += 1
    chaos.sandbox("DELETE", "/sandbox/faults")
    outcome = settle_and_tally(chaos, scale, "worker kill -9 mid-batch", posted)
    outcome.notes.append(f"{mid_batch} workers killed with provider requests in flight")
    assert mid_batch >= 1, "no worker was ever caught mid-batch"
    assert_clean(chaos, outcome, posted)


def kill_router_while_fanning_out(
    stack: ChaosStack, clients: AwsClients, event_id: str, kills: int
) -> list[dict[str, Any]]:
    """Kill the router each time the fan-out has moved on but is not complete; returns the
    event item as it was right after each kill."""
    caught: list[dict[str, Any]] = []
    seen_total = 0

    def progressed() -> bool:
        item = event_item(clients, event_id)
        total = int(item.get("counts", {}).get("total", 0))
        return total > seen_total and not item.get("fanout_complete")

    for _ in range(kills):
        if not wait_until(progressed, timeout=30, interval=0.02):
            break
        stack.kill9(stack.names("router")[0])
        item = event_item(clients, event_id)
        seen_total = int(item.get("counts", {}).get("total", 0))
        caught.append(item)
    return caught


def test_router_killed_mid_fan_out(chaos: ChaosStack, scale: Scale) -> None:
    posted = Posted()
    caught: list[dict[str, Any]] = []
    clients = chaos.clients()
    with api_client(chaos.api_url) as api:
        users = create_users(api, "fan", scale.subscribers, TWO_CHANNELS)
        recipients = [u.user_id for u in users]
        for index in range(scale.topic_events):
            topic = f"charts.fan{index}"
            subscribe(api, topic, users, TWO_CHANNELS)
            event_id = post_event(
                api,
                posted,
                {"type": "trend.top_artist_changed", "topic": topic, "data": TREND_DATA},
                recipients,
                TWO_CHANNELS,
            )
            assert event_id is not None, posted.rejected
            caught += kill_router_while_fanning_out(chaos, clients, event_id, scale.router_kills)
    outcome = settle_and_tally(chaos, scale, "router kill -9 mid-fan-out", posted)
    mid_fan_out = [c for c in caught if not c.get("fanout_complete")]
    outcome.notes.append(
        f"{len(mid_fan_out)} routers killed mid-fan-out, at "
        + ", ".join(f"{c['counts']['total']}" for c in mid_fan_out)
        + f" of {2 * scale.subscribers} notifications created"
    )
    assert mid_fan_out, "the router was never caught mid-fan-out"
    assert_clean(chaos, outcome, posted)


def test_flaky_and_slow_providers(chaos: ChaosStack, scale: Scale) -> None:
    # Faults are tried in order; the rates make 15% 500s, 15% 429s and 10% 2 s delays.
    chaos.sandbox(
        "POST",
        "/sandbox/faults",
        [
            {"status": 500, "rate": 0.15, "seed": 1},
            {"status": 429, "rate": 0.15 / 0.85, "retry_after": 1, "seed": 2},
            {"latency_ms": 2000, "rate": 0.10 / 0.70, "seed": 3},
        ],
    )
    posted = Posted()
    with api_client(chaos.api_url) as api:
        users = create_users(api, "flaky", scale.fault_events, THREE_CHANNELS)
        post_user_events(api, posted, users, THREE_CHANNELS)
    outcome = settle_and_tally(chaos, scale, "providers 30% 500/429, 10% +2 s", posted)
    faults = chaos.sandbox("GET", "/sandbox/faults")
    chaos.sandbox("DELETE", "/sandbox/faults")
    outcome.notes.append(
        "faults fired: " + ", ".join(f"{f['status'] or 'slow'} x{f['fired']}" for f in faults)
    )
    assert all(f["fired"] > 0 for f in faults), faults
    assert_clean(chaos, outcome, posted)


def test_emulator_frozen(chaos: ChaosStack, scale: Scale) -> None:
    posted = Posted()
    with api_client(chaos.api_url) as api:
        users = create_users(api, "frozen", scale.pause_events + 1, TWO_CHANNELS)
    probe_user, users = users[0], users[1:]
    producers = [
        Producer(api_client(chaos.api_url), posted, users[i::3], TWO_CHANNELS, interval=0.2)
        for i in range(3)
    ]
    for producer in producers:
        producer.start()
    assert wait_until(lambda: len(posted.expected) >= len(users) // 4, timeout=60)
    probe = Posted()
    with chaos.paused("emulator"):
        paused_at = time.time()
        # One request that starts while the emulator is frozen, answered however it is.
        prober = threading.Thread(
            target=post_user_events,
            args=(api_client(chaos.api_url), probe, [probe_user], TWO_CHANNELS),
            kwargs={"give_up_after": 0},
            daemon=True,
        )
        prober.start()
        time.sleep(scale.pause_seconds)
        resumed_at = time.time()
    prober.join(timeout=60)
    for producer in producers:
        producer.join(timeout=scale.settle_seconds)
        producer.api.close()
    outcome = settle_and_tally(chaos, scale, f"emulator frozen {scale.pause_seconds:.0f} s", posted)

    first = probe.attempts[0] if probe.attempts else None
    during = [a for a in posted.attempts if paused_at <= a.started < resumed_at]
    outcome.notes.append(
        f"a POST /events sent while frozen was answered {first and first.status} after "
        f"{first and round(first.seconds, 1)}s (Retry-After {first and first.retry_after}); "
        f"{sum(a.status == 503 for a in during)} of {len(during)} producer requests begun "
        "while frozen were 503s"
    )
    assert first is not None, "the probe made no request"
    assert first.status == 503, "the API did not answer 503 while the emulator was frozen"
    assert first.started + first.seconds < resumed_at, "the 503 came only after the freeze"
    assert first.retry_after
    assert_clean(chaos, outcome, posted)


def test_aws_failing_under_load(chaos: ChaosStack, scale: Scale) -> None:
    """About 15% of DynamoDB writes, SQS batch writes and SNS publishes fail the way AWS
    fails under load (throttling, transaction conflicts, 500s and lost answers after the
    write applied, partial batches) while events flow; then the faults stop. Nothing is
    lost, nothing is stuck, and, since no process dies here, nothing is sent twice."""
    from localstack.faults import aws_under_load

    posted = Posted()
    with api_client(chaos.api_url) as api:
        users = create_users(api, "aws", scale.aws_fault_events, TWO_CHANNELS)
        fans = create_users(api, "awsfan", scale.aws_fault_subscribers, ("email",))
        subscribe(api, "charts.aws", fans, ("email",))
        # Waiting work under the same faults: SMS deferred by quiet hours to a minute just
        # ahead, and delayed events (tests/chaos/timing_workload.py).
        waiting = max(4, scale.aws_fault_events // 4)
        due_at = due_minute()
        deferred = create_users(api, "awsdefer", waiting, TWO_CHANNELS)
        defer_until(api, deferred, due_at)
        delayed = create_users(api, "awsdelay", waiting, TWO_CHANNELS)
        chaos.set_faults([r.to_dict() for r in aws_under_load(0.15, hold_seconds=4.0)])
        topic_event = post_event(
            api,
            posted,
            {"type": "trend.top_artist_changed", "topic": "charts.aws", "data": TREND_DATA},
            [u.user_id for u in fans],
            ("email",),
        )
        assert topic_event is not None, posted.rejected
        post_user_events(api, posted, users, TWO_CHANNELS)
        post_waiting_events(api, posted, deferred, delayed)
    wait_until(lambda: len(chaos.sandbox("GET", "/sandbox/messages")) >= 50, timeout=60)
    # The faults last until the deferred notifications have come due and been handed out.
    wait_until(lambda: time.time() > due_at.timestamp() + 10, timeout=150)
    fired = chaos.fault_stats()
    chaos.set_faults([])
    assert wait_released(chaos, list(posted.expected), timeout=scale.settle_seconds)
    outcome = settle_and_tally(chaos, scale, "AWS 15% faults (DynamoDB, SQS, SNS)", posted)
    outcome.notes.append(
        f"{sum(fired.values())} AWS faults injected: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(fired.items()))
    )
    assert sum(fired.values()) > 0, "no fault was injected"
    assert_clean(chaos, outcome, posted)
    assert outcome.unsettled_events == [], outcome.unsettled_events[:10]
    assert outcome.duplicates == {}, outcome.duplicates
    assert outcome.failed == 0, "a fault turned into a failed notification"
