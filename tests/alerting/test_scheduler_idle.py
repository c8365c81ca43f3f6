"""An idle scheduler asks little of AWS, and still picks up a rule written meanwhile."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest

from alerting.rule_store import RuleStore
from alerting.scheduler import PassStats, Scheduler
from core.aws.clients import AwsClients
from tests.alerting.conftest import START, Clock
from tests.alerting.test_rule_runs import threshold_rule
from tests.conftest import Stack
from tests.support import aws_calls


def test_a_pass_with_no_rule_is_one_read(stack: Stack) -> None:
    scheduler = Scheduler(stack.settings, stack.clients, owner="idle", clock=Clock())
    with aws_calls(stack.clients.dynamodb) as calls:
        for _ in range(3):
            assert scheduler.run_pass().sent == 0
    assert [operation for operation, _ in calls] == ["GetItem"] * 3


def test_idle_passes_back_off_and_a_rule_written_meanwhile_is_sent(stack: Stack) -> None:
    clock = Clock(START + timedelta(seconds=5))
    settings = stack.settings.model_copy(
        update={"scheduler_tick_seconds": 1.0, "scheduler_idle_max_seconds": 30.0}
    )
    scheduler = Scheduler(settings, stack.clients, owner="idle", clock=clock)
    stats = scheduler.run_pass()
    assert not stats.rules
    pauses = [scheduler.pause(stats, 0.0)]
    for _ in range(6):
        pauses.append(scheduler.pause(stats, pauses[-1]))
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # doubling, bounded
    assert scheduler.pause(PassStats(sent=1), 30.0) == 1.0  # work: back to the tick
    assert scheduler.pause(None, 30.0) == 1.0  # a failed pass: the tick

    # The API writes a rule (its due item and the cursor) while the scheduler pauses.
    RuleStore(stack.clients.dynamodb, stack.clients.names.table, settings.scheduler_shards).put(
        "fresh", threshold_rule(), clock.now
    )
    clock.advance(seconds=45)
    stats = scheduler.run_pass()
    assert stats.rules and stats.sent == 0
    # With rules, an idle pause ends at the next minute at the latest: that minute's runs
    # (the rule's first, due on the minute) go out on time.
    assert scheduler.pause(stats, 30.0) == pytest.approx(10.0)
    clock.advance(seconds=10)
    assert scheduler.run_pass().sent == 1


def test_start_up_before_the_table_waits_without_a_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    settings = stack.settings.model_copy(
        update={"resource_prefix": "herald-absent", "scheduler_tick_seconds": 0.01}
    )
    scheduler = Scheduler(settings, AwsClients(settings), owner="early")
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="herald.alerting.scheduler")
    runner = threading.Thread(target=scheduler.run, args=(stop,))
    runner.start()
    try:
        deadline = threading.Event()
        for _ in range(200):
            if any("waiting for the table" in r.getMessage() for r in caplog.records):
                break
            deadline.wait(0.05)
    finally:
        stop.set()
        runner.join(10)
    waits = [r for r in caplog.records if r.name == "herald.alerting.scheduler"]
    assert waits and all("waiting for the table" in r.getMessage() for r in waits)
    assert all(r.exc_info is None and r.levelno <= logging.INFO for r in waits)
