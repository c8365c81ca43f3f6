"""What a benchmark workload cost: the machine's and the emulators' CPU over a window
(`Meter`), Herald's AWS calls and CPU between two snapshots (`usage`), and percentiles.

AWS calls are counted inside Herald's processes (`HERALD_AWS_CALL_LOG`, `core/aws/clients.py`);
CPU comes from /proc.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.stack import Proc, Snapshot, Stack, diff_calls


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latencies(sent: dict[str, float], arrived: dict[str, float]) -> dict[str, float]:
    """Milliseconds from each event's POST to each of its notifications' arrival."""
    values = [(at - sent[nid.split(":", 1)[0]]) * 1000 for nid, at in arrived.items()]
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Meter:
    """Wall time, the machine's CPU use and the emulators' CPU over one workload."""

    def __init__(self, emulators: Sequence[Proc]) -> None:
        self.emulators = list(emulators)
        self.t0 = time.monotonic()
        self.busy0 = machine_busy()
        self.cpu0 = [p.cpu_seconds() for p in self.emulators]

    def done(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        busy1 = machine_busy()
        busy = (busy1[0] - self.busy0[0]) / max(busy1[1] - self.busy0[1], 1)
        used = [p.cpu_seconds() - c for p, c in zip(self.emulators, self.cpu0, strict=True)]
        return {
            "wall_s": wall,
            "machine_busy": busy,
            "emulator_cpu_s": sum(used),
            # The busiest emulator process: each is one Python process, so one core at most.
            "emulator_busy": max(used) / wall if wall else 0.0,
        }


def usage(stack: Stack, before: Snapshot, after: Snapshot, notifications: int) -> dict[str, Any]:
    """AWS calls and CPU of Herald's processes between two snapshots, per notification."""
    calls = {n: diff_calls(before.calls.get(n, {}), after.calls.get(n, {})) for n in after.calls}
    cpu = {n: after.cpu[n] - before.cpu.get(n, 0.0) for n in after.cpu}
    total_calls = sum(c for per in calls.values() for ops in per.values() for c in ops.values())
    per = max(notifications, 1)
    return {
        "notifications": notifications,
        "calls_by_process": calls,
        "aws_requests": total_calls,
        "aws_requests_per_notification": total_calls / per,
        "cpu_by_process": cpu,
        "herald_cpu_s": sum(cpu.values()),
        "herald_cpu_s_per_1000": sum(cpu.values()) / per * 1000,
    }
