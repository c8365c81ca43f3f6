"""How big each scenario is: `small` in the default test run, `full` for `make chaos`.

Chosen with `HERALD_CHAOS_SCALE` (small | full). The emulator is the bottleneck (a few
hundred AWS calls a second, slower as queues and tables grow), so even `full` stays in the
hundreds of notifications per scenario.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    kill_events: int  # (a) user events, two notifications each
    worker_kills: int
    subscribers: int  # (b) per topic event, two notifications each
    topic_events: int
    router_kills: int  # per topic event
    fault_events: int  # (c) user events, three notifications each
    pause_events: int  # (d) user events, two notifications each
    pause_seconds: float
    settle_seconds: float
    aws_fault_events: int = 40  # (e) user events, two notifications each, under AWS faults
    aws_fault_subscribers: int = 60  # (e) one topic event to these, one email each


SMALL = Scale(
    name="small",
    kill_events=60,
    worker_kills=3,
    subscribers=60,
    topic_events=1,
    router_kills=2,
    fault_events=50,
    pause_events=50,
    pause_seconds=10,
    settle_seconds=150,
)
FULL = Scale(
    name="full",
    kill_events=300,
    worker_kills=10,
    subscribers=200,
    topic_events=2,
    router_kills=3,
    fault_events=300,
    pause_events=250,
    pause_seconds=10,
    settle_seconds=600,
    aws_fault_events=250,
    aws_fault_subscribers=1000,
)
SCALES = {s.name: s for s in (SMALL, FULL)}


def current() -> Scale:
    name = os.environ.get("HERALD_CHAOS_SCALE", "small")
    if name not in SCALES:
        raise ValueError(f"HERALD_CHAOS_SCALE must be one of {', '.join(SCALES)}, not {name!r}")
    return SCALES[name]
