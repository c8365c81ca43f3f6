"""Herald's benchmarks: `make bench` (or `python -m bench.run`) writes docs/benchmarks.md.

Everything runs on loopback: two moto servers (DynamoDB in one, SNS and SQS in the other),
the provider sandbox, Herald's API under uvicorn, the router and one worker per channel, as
separate processes. Phases (`--only` names them):

1. api (`bench/api_load.py`): Locust headless, 32 users back to back, 20 s, single
   activity events, against Herald's API and against a bare FastAPI app
   (`bench/bare_app.py`) in the same run: accepted events/s, p50/p99, API CPU per accepted
   event and the ratio to the bare app.
2. requests (`bench/pipeline.py`): AWS requests and Herald CPU per delivered notification:
   (a) 50 activity events to users who want sms, email and chat (150 notifications);
   (b) one trend event to a topic of 1,000 subscribers who want email.
3. latency (`bench/pipeline.py`): end to end, POST → the sandbox receiving the provider
   request, at a steady 20 events/s (one notification each), with a per-hop breakdown
   from the records' history.
4. priority (`bench/pipeline.py`): critical events while 1,000 normal notifications wait
   on the same channel.
5. emulator (`bench/emulator_probe.py`): what a write costs the emulator, beside stock moto.
6. rules (`bench/rules.py`): alert rules every minute through the scheduler and the
   evaluators; written to docs/benchmarks-rules.md.
7. capacity (`bench/capacity.py`): DynamoDB units by table, index and partition key, SQS
   and SNS requests, $ per million notifications, Herald CPU per notification, from the
   emulators' meters. Alone: `python -m bench.run --only capacity` (splices its section
   into the existing report).
8. idle (`bench/idle.py`): every long-running process on an empty stack, no traffic: AWS
   requests per second by process and operation once they have backed off, over five
   minutes (target: at most 1 in total); ten minutes in all. Alone:
   `python -m bench.run --only idle` (splices its section into the existing report).
9. due_lag (`bench/due_lag.py`): deferred notifications due in the same minute (10,000 by
   default): the lag from the due time to the provider (p50, p99), and the due sender's
   requests and CPU per notification. Alone: `python -m bench.run --only due_lag`
   (splices its section into the existing report).
10. trickle (`bench/trickle.py`): 500 comment events x sms, email and chat in a burst, then
   600 at a steady 10/s, then the same trickle with the low-rate batching off: the API's
   and router's CPU and AWS requests per event side by side (target at 10/s: within 1.5x
   of the burst). Alone: `python -m bench.run --only trickle` (splices its section).
Peak RSS (VmHWM) of the API and of each worker comes with every phase.

`make bench` leaves out what takes long: the capacity phase's topic of 100,000 subscribers
(about 25 minutes on 2 cores). `make bench-full` (`--full`) runs it too; an explicit
`--topic-large` wins over either.

AWS requests are counted inside Herald's processes (`HERALD_AWS_CALL_LOG`, `core/aws/clients.py`);
CPU and memory come from /proc. The emulators are reset between phases so each starts
with an empty table and empty queues.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import capacity, capacity_report, due_lag, figures, idle, report, rules, trickle
from bench.api_load import phase_api
from bench.emulator_probe import phase_emulator
from bench.pipeline import phase_latency, phase_priority, phase_requests
from bench.stack import ROOT, Stack
from bench.workload import log

# The sizes of the long runs: (`make bench`, `make bench-full`, i.e. --full). The rules
# phase keeps its 10,000 rules in both: its figures (a minute's runs queued, evaluations
# per second over a full window) need that backlog, and it takes about four minutes.
SIZES: dict[str, tuple[int, int]] = {
    "topic_large": (0, 100_000),
}


def _sizes(name: str) -> str:
    quick, full = SIZES[name]
    return f" (default {quick:,}; with --full {full:,})"


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    from importlib.metadata import version

    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "moto": version("moto"),
        "uvicorn": version("uvicorn"),
        "locust": version("locust"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # Other work on the machine skews wall-clock figures (CPU per process less so).
        "load_average": Path("/proc/loadavg").read_text().split()[0],
        "commit": commit,
    }


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/benchmarks.md", help="the report to write")
    parser.add_argument(
        "--json",
        default="docs/benchmarks-raw/results.json",
        help="also write the raw figures here (git ignores docs/benchmarks-raw/)",
    )
    parser.add_argument(
        "--before",
        default="bench/before.json",
        help="figures of an earlier run to show beside this one (if the file exists)",
    )
    parser.add_argument("--api-seconds", type=int, default=20)
    parser.add_argument("--activity-events", type=int, default=50)
    parser.add_argument("--topic-size", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--critical", type=int, default=30)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--rule-schedulers", type=int, default=1)
    parser.add_argument("--rule-evaluators", type=int, default=2)
    parser.add_argument("--rule-eval-seconds", type=float, default=60.0)
    parser.add_argument("--rules-out", default="docs/benchmarks-rules.md")
    parser.add_argument(
        "--capacity-activity",
        type=int,
        default=500,
        help="activity events (x 3 channels) of the capacity phase's activity workload",
    )
    parser.add_argument("--capacity-steady-seconds", type=float, default=20.0)
    parser.add_argument(
        "--topic-large",
        type=int,
        default=None,
        help="subscribers of the capacity phase's large topic (0: leave it out)"
        + _sizes("topic_large"),
    )
    parser.add_argument(
        "--capacity-workloads",
        default="activity,topic,steady,topic_large",
        help="the capacity phase's workloads, comma-separated (others keep their figures "
        "from --capacity-json when it exists)",
    )
    parser.add_argument(
        "--before-capacity",
        default="bench/before_capacity.json",
        help="capacity figures of an earlier run, for the report's before column",
    )
    parser.add_argument(
        "--capacity-json",
        default="",
        help="also write this run's capacity figures here (e.g. bench/before_capacity.json)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=300.0,
        help="the idle phase's window of no traffic, in which every AWS call is counted (long "
        "enough to hold a pass of each background process at its idle maximum)",
    )
    parser.add_argument(
        "--idle-settle",
        type=float,
        default=300.0,
        help="seconds the idle phase's processes run (and back off) before its window opens",
    )
    parser.add_argument(
        "--due-count", type=int, default=10_000, help="notifications of the due_lag phase"
    )
    parser.add_argument(
        "--due-lead",
        type=float,
        default=300.0,
        help="seconds from the due_lag phase's event to its due minute (the fan-out's time)",
    )
    parser.add_argument("--trickle-burst", type=int, default=500, help="the trickle phase's burst")
    parser.add_argument("--trickle-events", type=int, default=600, help="events of its trickle")
    parser.add_argument("--trickle-rate", type=float, default=10.0, help="its events per second")
    parser.add_argument(
        "--only",
        default="api,requests,latency,priority,emulator,rules,capacity,idle,due_lag,trickle",
        help="phases to run, comma-separated",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the long runs at full size too (`make bench-full`): the 100,000-subscriber topic",
    )
    parser.add_argument(
        "--command",
        default=None,
        help="how this run was started (default: make bench, or make bench-full with --full)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: write the report again from the figures in --json",
    )
    args = parser.parse_args(argv)
    for name, (quick, full) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, full if args.full else quick)
    if args.command is None:
        args.command = "make bench-full" if args.full else "make bench"
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    phases = set(args.only.split(","))
    before_path = Path(args.before)
    before = json.loads(before_path.read_text()) if before_path.exists() else None
    before_cap_path = Path(args.before_capacity)
    before_cap = (
        json.loads(before_cap_path.read_text()).get("capacity")
        if before_cap_path.exists()
        else None
    )
    if args.render_only:
        saved = json.loads(Path(args.json).read_text())
        Path(args.out).write_text(report.render(saved, before, before_path.as_posix(), before_cap))
        print(figures.summary(saved, before))
        return 0

    # SIGTERM (a CI timeout, kill) stops the processes this run started, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"stopped by SIGTERM after {args.only}"))
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "command": args.command, "peak_rss_mb": {}}
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    log(f"working files in {workdir}")
    stack = Stack(workdir, capacity=phases == {"capacity"})
    steps: list[tuple[str, Callable[[], None]]] = [
        ("api", lambda: phase_api(stack, results, args.api_seconds)),
        (
            "requests",
            lambda: phase_requests(stack, results, args.activity_events, args.topic_size),
        ),
        ("latency", lambda: phase_latency(stack, results, args.rate, args.latency_seconds)),
        ("priority", lambda: phase_priority(stack, results, args.backlog, args.critical)),
        ("emulator", lambda: phase_emulator(stack, results)),
        (
            "rules",
            lambda: rules.phase_rules(
                stack,
                results,
                args.rules,
                args.rule_schedulers,
                args.rule_evaluators,
                args.rule_eval_seconds,
            ),
        ),
        (
            "capacity",
            lambda: capacity.phase_capacity(
                stack,
                results,
                args.capacity_activity,
                args.topic_size,
                args.rate,
                args.capacity_steady_seconds,
                args.topic_large,
                set(args.capacity_workloads.split(",")),
            ),
        ),
        ("idle", lambda: idle.phase_idle(stack, results, args.idle_seconds, args.idle_settle)),
        ("due_lag", lambda: due_lag.phase_due_lag(stack, results, args.due_count, args.due_lead)),
        (
            "trickle",
            lambda: trickle.phase_trickle(
                stack, results, args.trickle_burst, args.trickle_events, args.trickle_rate
            ),
        ),
    ]
    try:
        stack.start()
        for name, step in steps:
            if name in phases:
                step()
    finally:
        stack.stop()
    results["duration_s"] = time.monotonic() - started
    if "rules" in results:
        rules.write(Path(args.rules_out), results)
        log(f"wrote {args.rules_out}")
    if "capacity" in results and args.capacity_json:
        kept = Path(args.capacity_json)
        if kept.exists():  # workloads not run this time keep their earlier figures
            earlier = json.loads(kept.read_text()).get("capacity") or {}
            results["capacity"] = {**earlier, **results["capacity"]}
        saved = {"machine": results["machine"], "capacity": results["capacity"]}
        Path(args.capacity_json).write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
        log(f"wrote {args.capacity_json}")
    if phases == {"rules"}:  # the rules phase alone leaves the main report as it is
        return 0
    if phases == {"capacity"}:  # its own section of the report, the rest as it was
        out = Path(args.out)
        text = "\n".join(capacity_report.section(results["capacity"], before_cap))
        out.write_text(capacity_report.splice(out.read_text() if out.exists() else "", text))
        log(f"wrote the capacity section of {args.out}")
        return 0
    if phases == {"idle"}:  # its own section of the report, the rest as it was
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        out = Path(args.out)
        text = "\n".join(idle.section(results["idle"]))
        out.write_text(idle.splice(out.read_text() if out.exists() else "", text))
        log(f"wrote the idle section of {args.out}")
        return 0
    if phases == {"due_lag"}:  # its own section of the report, the rest as it was
        out = Path(args.out)
        text = "\n".join(due_lag.section(results["due_lag"]))
        out.write_text(due_lag.splice(out.read_text() if out.exists() else "", text))
        log(f"wrote the due_lag section of {args.out}")
        return 0
    if phases == {"trickle"}:  # its own section of the report, the rest as it was
        out = Path(args.out)
        text = "\n".join(trickle.section(results["trickle"]))
        out.write_text(trickle.splice(out.read_text() if out.exists() else "", text))
        log(f"wrote the trickle section of {args.out}")
        return 0
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    text = report.render(results, before, before_path.as_posix(), before_cap)
    if "trickle" in results:
        text = trickle.splice(text, "\n".join(trickle.section(results["trickle"])))
    Path(args.out).write_text(text)
    print(figures.summary(results, before))
    log(f"wrote {args.out} in {results['duration_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
