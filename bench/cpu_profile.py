"""Where Herald's CPU goes on the activity workload, process by process, and what a change
saved: `python -m bench.cpu_profile`.

The activity workload of the capacity phase (N events, one per user, each to sms, email and
chat) runs against the emulators with the API, the router and a worker per channel as
processes, the way `bench.pipeline` drives them, and prints Herald CPU per delivered
notification. With `--profile` each process runs under a CPU-time profiler of every thread
(`wrap`, below): the functions that used most CPU, and the CPU by package (botocore,
json, jinja2, logging, prometheus, opentelemetry, Herald's own modules).

With `--before-tree DIR` (a `git worktree` of an earlier commit) the same workload runs
first on that tree's code, then on this one's, on the same emulators in the same run, and
the ratio is printed: a before and after under the same load of the machine. `--rounds`
alternates the two so a burst of other work on the machine falls on both.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import pstats
import runpy
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "botocore",
    "boto3",
    "urllib3",
    "http",
    "ssl",
    "json",
    "jinja2",
    "logging",
    "prometheus_client",
    "opentelemetry",
    "pydantic",
    "httpx",
    "httpcore",
    "twilio",
    "requests",
    "uvicorn",
    "starlette",
    "fastapi",
    "asyncio",
    "concurrent",
    "threading",
    "queue",
    "core",
    "listeners",
    "api",
    "notifiers",
)


# --- the profiler inside each process ---------------------------------------------------------


def wrap(out: str, argv: list[str]) -> None:
    """Run `-m module args…` with a CPU-time profiler on every thread; write the merged
    statistics to `out` when the process exits (SIGTERM included)."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_thread_profile(*_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    def dump() -> None:
        with lock:
            taken = list(profiles)
        stats: pstats.Stats | None = None
        for profile in taken:
            try:
                profile.create_stats()
            except Exception:  # a thread's half-built profile is left out
                continue
            if stats is None:
                stats = pstats.Stats(profile)
            else:
                stats.add(profile)
        if stats is not None:
            stats.dump_stats(out)

    atexit.register(dump)
    threading.setprofile(start_thread_profile)
    start_thread_profile()
    if argv[0] != "-m":
        raise SystemExit("wrap: -m module expected")
    sys.path[0] = str(Path.cwd())  # run as a file: import the working tree's modules
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


def by_package(path: Path) -> dict[str, float]:
    """Own CPU seconds (tottime) of a stats file grouped by the top-level package."""
    stats = pstats.Stats(str(path))
    out: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        out[_package(filename)] += tt
    return dict(out)


def _package(filename: str) -> str:
    if filename == "~":
        return "builtins"
    parts = Path(filename).parts
    for anchor in ("site-packages", "python3.11", "main"):
        if anchor in parts:
            rest = parts[parts.index(anchor) + 1 :]
            if rest and rest[0] in PACKAGES:
                return rest[0]
    for name in PACKAGES:
        if name in parts:
            return name
    return "other"


def top(path: Path, sort: str, count: int) -> str:
    import io

    text = io.StringIO()
    pstats.Stats(str(path), stream=text).sort_stats(sort).print_stats(count)
    return text.getvalue()


# --- the driver -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench import seed
    from bench.stack import Stack, http_ok, wait_until
    from bench.workload import activity_body, log, run_workload, warm_up
    from core.catalogue.event_types import CHANNELS

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    trees: list[tuple[str, Path | None]] = [("now", None)]
    if args.before_tree:
        trees = [("before", Path(args.before_tree)), ("now", None)]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    try:
        stack.start()
        for round_no in range(args.rounds):
            for name, tree in trees:
                clients = stack.fresh_aws()
                users = seed.users(
                    clients, f"cpu{round_no}{name}", args.events, lambda i: ["sms", "email", "chat"]
                )
                tag = f"cpu-{name}-{round_no}"
                calls = workdir / "calls"
                calls.mkdir(parents=True, exist_ok=True)
                port = _free_port()
                commands: dict[str, list[str]] = {
                    "api": [
                        "-m",
                        "uvicorn",
                        "api.main:create_app",
                        "--factory",
                        "--port",
                        str(port),
                        "--no-access-log",
                    ],
                    "router": ["-m", "listeners.router"],
                    **{f"worker-{c}": ["-m", "listeners.worker", "--channel", c] for c in CHANNELS},
                }
                for proc, argv in commands.items():
                    if args.profile:
                        argv = [
                            str(Path(__file__).resolve()),
                            "wrap",
                            str(workdir / f"{tag}-{proc}.prof"),
                            *argv,
                        ]
                    stack.herald[proc] = _start(tree or ROOT, f"{tag}-{proc}", argv, stack, calls)
                base = f"http://127.0.0.1:{port}"
                if not wait_until(lambda: http_ok(f"{base}/health"), timeout=240):  # noqa: B023
                    raise RuntimeError(f"the API did not start; see {stack.logs}")
                wait_until(lambda: all(p.calls() for p in stack.herald.values()), timeout=30)
                if args.warmup:
                    warm_up(stack, clients, base, f"warm{round_no}{name}", args.warmup)
                bodies = [activity_body(u) for u in users]
                log(f"{tag}: {args.events} activity events x sms, email, chat")
                w = run_workload(stack, clients, base, bodies, args.events * 3, 8, 600)
                stack.stop_herald()
                n = max(w["notifications"], 1)
                row = {
                    "notifications": w["notifications"],
                    "cpu_ms_per_notification": w["herald_cpu_s"] * 1000 / n,
                    "requests_per_notification": w["aws_requests_per_notification"],
                    "cpu_ms_by_process": {
                        p: s * 1000 / n for p, s in sorted(w["cpu_by_process"].items())
                    },
                    "machine_busy": w["machine_busy"],
                    "calls_by_process": w["calls_by_process"],
                }
                results[name].append(row)
                log(
                    f"{tag}: {row['notifications']} delivered, "
                    f"{row['cpu_ms_per_notification']:.2f} ms CPU and "
                    f"{row['requests_per_notification']:.2f} requests per notification"
                )
    finally:
        stack.stop()
    return results


def _free_port() -> int:
    from bench.stack import free_port

    return free_port()


def _start(tree: Path, name: str, argv: list[str], stack: Any, calls: Path) -> Any:
    """`bench.stack.start_python` with `tree` as the working directory and import root, so
    an earlier commit's worktree runs its own code under the same emulators."""
    import os
    import subprocess

    from bench.stack import Proc

    env = {
        **os.environ,
        **stack.env(),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(tree),
        "HERALD_AWS_CALL_LOG": str(calls / name),
    }
    log = stack.logs / f"{name}.log"
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    popen = subprocess.Popen(
        [sys.executable, *argv], cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT
    )
    return Proc(name, popen, log, str(calls / name))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["wrap"]:
        wrap(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--warmup", type=int, default=0, help="events through each stack before it is measured"
    )
    parser.add_argument("--profile", action="store_true", help="profile every process")
    parser.add_argument("--before-tree", default="", help="a worktree of the earlier commit")
    parser.add_argument(
        "--workdir", default=str(Path(tempfile.gettempdir()) / "herald-cpu-profile")
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed per process")
    parser.add_argument("--json", default="", help="write the figures here too")
    args = parser.parse_args(argv)
    results = run(args)
    for name, rows in results.items():
        cpu = [r["cpu_ms_per_notification"] for r in rows]
        print(f"{name}: CPU ms per notification {', '.join(f'{c:.2f}' for c in cpu)}")
        for r in rows:
            by_proc = {k: round(v, 2) for k, v in r["cpu_ms_by_process"].items()}
            print(f"  by process: {json.dumps(by_proc)}")
    if "before" in results and results["before"] and results["now"]:
        ratios = [
            n["cpu_ms_per_notification"] / b["cpu_ms_per_notification"]
            for b, n in zip(results["before"], results["now"], strict=True)
        ]
        print(f"now / before: {', '.join(f'{r:.2f}' for r in ratios)}")
    if args.profile:
        for prof in sorted(Path(args.workdir).glob("cpu-*.prof")):
            packages = sorted(by_package(prof).items(), key=lambda kv: -kv[1])
            print(f"\n=== {prof.name}: own CPU by package (s)")
            print("  " + ", ".join(f"{k} {v:.2f}" for k, v in packages[:14]))
            print(top(prof, "tottime", args.top))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
