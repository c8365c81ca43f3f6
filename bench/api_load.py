"""Phase 1 of the benchmarks: Herald's API under Locust, and a bare FastAPI app
(`bench/bare_app.py`) under the same load in the same run: accepted events/s, p50/p99, API
CPU per accepted event and its ratio to the bare app's.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.meter import Meter
from bench.stack import API_KEY, ROOT, Proc, Stack
from bench.workload import activity_body, log

LOCUST_USERS = 32


def locust(
    base: str, proc: Proc, emulators: Sequence[Proc], workdir: Path, label: str, seconds: int
) -> dict:
    """Warm up, then Locust headless; CPU of `proc` from /proc before and after."""
    with httpx.Client(base_url=base, timeout=30, headers={"X-API-Key": API_KEY}) as api:
        for _ in range(100):
            api.post("/events", json=activity_body("load-u1", "like"))
    prefix = workdir / f"locust-{label}"
    env = {
        **os.environ,
        "HERALD_API_KEY": API_KEY,
        "HERALD_LOAD_SEED_POPULATION": "0",
        "HERALD_LOAD_WAIT_SECONDS": "0",
        "HERALD_LOAD_W_ACTIVITY": "1",
        "HERALD_LOAD_W_TREND": "0",
        "HERALD_LOAD_W_CRITICAL": "0",
        "HERALD_LOAD_W_BATCH": "0",
    }
    command = [
        *(sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py")),
        *("--headless", "-u", str(LOCUST_USERS), "-r", str(LOCUST_USERS), "-t", f"{seconds}s"),
        *("--host", base, "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"),
    ]
    cpu0 = proc.cpu_seconds()
    meter = Meter(emulators)
    children0 = os.times()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    children1 = os.times()
    cpu = proc.cpu_seconds() - cpu0
    window = meter.done()
    with open(f"{prefix}_stats.csv") as stats:
        rows = {r["Name"]: r for r in csv.DictReader(stats)}
    row = rows["POST /events [activity]"]
    requests_ = int(row["Request Count"])
    failures = int(row["Failure Count"])
    accepted = requests_ - failures
    return {
        "command": (
            f"locust -f locustfile.py --headless -u {LOCUST_USERS} -r {LOCUST_USERS} "
            f"-t {seconds}s --host <api> --csv <dir>/locust-{label} --only-summary"
        ),
        "exit_code": done.returncode,
        "requests": requests_,
        "failures": failures,
        "accepted": accepted,
        "accepted_per_s": accepted / window["wall_s"],
        "locust_rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "cpu_s": cpu,
        "cpu_ms_per_accepted": cpu / max(accepted, 1) * 1000,
        "locust_cpu_s": (children1[2] + children1[3]) - (children0[2] + children0[3]),
        **window,
    }


def phase_api(stack: Stack, results: dict[str, Any], seconds: int) -> None:
    assert stack.moto is not None
    stack.fresh_aws()
    log("API: bare FastAPI app under Locust")
    bare_proc, bare_url = stack.start_bare()
    bare = locust(bare_url, bare_proc, stack.emulators, stack.workdir, "bare", seconds)
    bare["peak_rss_mb"] = bare_proc.peak_rss_mb()
    bare_proc.stop()
    log(f"API: bare app {bare['accepted_per_s']:.0f}/s, {bare['cpu_ms_per_accepted']:.3f} ms CPU")
    log("API: Herald under Locust")
    base = stack.start_herald("api", pipeline=False)
    herald = locust(base, stack.herald["api"], stack.emulators, stack.workdir, "herald", seconds)
    peaks = stack.stop_herald()
    herald["peak_rss_mb"] = peaks["api"]
    herald["cpu_ratio_to_bare"] = herald["cpu_ms_per_accepted"] / bare["cpu_ms_per_accepted"]
    log(
        f"API: Herald {herald['accepted_per_s']:.0f}/s, p50 {herald['p50_ms']:.0f} ms, "
        f"p99 {herald['p99_ms']:.0f} ms, {herald['cpu_ms_per_accepted']:.3f} ms CPU "
        f"({herald['cpu_ratio_to_bare']:.1f}x bare)"
    )
    results["api"] = {"herald": herald, "bare": bare, "users": LOCUST_USERS, "seconds": seconds}
    results["peak_rss_mb"]["api (locust run)"] = peaks["api"]
