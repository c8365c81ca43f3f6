"""The scheduler's lag reaches its log line as a number: the deployed stack's scheduler-lag
alarm reads `lag_seconds` there through a CloudWatch Logs metric filter."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import pytest

from alerting.rule_store import RuleStore
from alerting.scheduler import Scheduler
from core.platform.logs import JsonFormatter
from tests.alerting.conftest import START, Clock
from tests.alerting.test_rule_runs import threshold_rule
from tests.conftest import Stack


def test_a_late_run_logs_how_late_it_went_out(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(START + timedelta(seconds=5))
    settings = stack.settings.model_copy(update={"scheduler_tick_seconds": 0.01})
    RuleStore(stack.clients.dynamodb, stack.clients.names.table, settings.scheduler_shards).put(
        "late", threshold_rule(), clock.now
    )
    # The first run is due on the next minute; the scheduler gets to it 100 s after: it sends
    # the latest due run and skips the missed one, and logs how far behind it was.
    due = START.replace(second=0) + timedelta(minutes=1)
    clock.now = due + timedelta(seconds=100)
    scheduler = Scheduler(settings, stack.clients, owner="lag", clock=clock)
    caplog.set_level(logging.INFO, logger="herald.alerting.scheduler")
    stop = threading.Event()
    runner = threading.Thread(target=scheduler.run, args=(stop,))
    runner.start()
    try:
        for _ in range(400):
            if any(hasattr(r, "lag_seconds") for r in caplog.records):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        runner.join(10)
    (sent,) = [r for r in caplog.records if hasattr(r, "lag_seconds")]
    assert sent.getMessage().startswith("sent 1 rule run")
    line = json.loads(JsonFormatter("scheduler").format(sent))
    assert line["lag_seconds"] == pytest.approx(100.0)
