"""The scaling and cost figures of docs/deploy.md are what `python -m deploy.sizing` prints,
and the model behaves as a model should (no CDK, no Node.js needed)."""

from __future__ import annotations

import math

from deploy import sizing
from tests.support import ROOT


def test_the_doc_shows_what_the_script_prints() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert sizing.report() in doc, "run `python -m deploy.sizing` and paste its output"


def test_the_target_backlog_is_acceptable_latency_over_time_per_message() -> None:
    per_message = sizing.worker_seconds_per_message()
    assert sizing.TARGET_BACKLOG["worker"] == math.floor(
        sizing.ACCEPTABLE_QUEUE_LATENCY_S / per_message
    )
    # A task at the target backlog takes its last message within the acceptable latency.
    assert sizing.TARGET_BACKLOG["worker"] * per_message <= sizing.ACCEPTABLE_QUEUE_LATENCY_S


def test_more_tasks_drain_a_burst_sooner_and_no_sooner_than_full_speed_allows() -> None:
    target = sizing.TARGET_BACKLOG["worker"]
    small = sizing.simulate_drain(100_000, 1, 10, target)
    large = sizing.simulate_drain(100_000, 1, 40, target)
    assert large.seconds < small.seconds
    assert small.peak_tasks == 10 and large.peak_tasks == 40
    full_speed = 100_000 * sizing.worker_seconds_per_message() / 40
    assert large.seconds > full_speed + sizing.SCALE_OUT_REACTION_S


def test_a_hundred_times_the_notifications_costs_less_than_a_hundred_times_more() -> None:
    low = sizing.monthly_cost(1_000_000, "activity")
    high = sizing.monthly_cost(100_000_000, "activity")
    assert low.total < high.total < 100 * low.total
    assert high.aws_requests == 100 * low.aws_requests
