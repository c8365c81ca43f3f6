"""Refuse to start a stack on ports that are taken; or wait for a stack's ports to open.

    python -m cli.ports 127.0.0.1 8000:api 4566:emulator 8025:sandbox
    python -m cli.ports --wait 120 127.0.0.1 4567:emulator-dynamodb

Without the first `make run` crash-loops a server whose port is busy and, worse, lets the
other programs talk to whatever already listens there (another emulator, another stack).
The second lets a program that needs a server supervisord starts beside it (provisioning
needs both emulators) begin once that server listens, instead of failing and restarting.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

#: How often `--wait` probes.
WAIT_INTERVAL = 0.2


def busy(host: str, port: int) -> bool:
    """Whether something already listens on host:port (a connect succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def parse(spec: str) -> tuple[int, str]:
    """`PORT:NAME` (NAME optional) as (port, name)."""
    port, _, name = spec.partition(":")
    return int(port), name or "port"


def refuse_taken(host: str, specs: list[str]) -> int:
    taken = [f"{host}:{port} ({name})" for port, name in map(parse, specs) if busy(host, port)]
    if taken:
        print(
            f"Herald: cannot start: {', '.join(taken)} already in use. Stop what listens "
            "there (`make stop` if it is an earlier `make run`), or choose other ports, e.g. "
            "`make run HERALD_API_PORT=8001 HERALD_EMULATOR_PORT=4568 "
            "HERALD_EMULATOR_DYNAMODB_PORT=4569 HERALD_SANDBOX_PORT=8026`.",
            file=sys.stderr,
        )
        return 1
    return 0


def wait_for(host: str, specs: list[str], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    waiting = [parse(spec) for spec in specs]
    while True:
        waiting = [(port, name) for port, name in waiting if not busy(host, port)]
        if not waiting:
            return 0
        if time.monotonic() > deadline:
            closed = ", ".join(f"{host}:{port} ({name})" for port, name in waiting)
            print(f"Herald: nothing listens on {closed} after {seconds:g} s", file=sys.stderr)
            return 1
        time.sleep(WAIT_INTERVAL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Exit 1 naming each taken port; with --wait, once all listen exit 0."
    )
    parser.add_argument(
        "--wait", type=float, metavar="SECONDS", help="wait until every port listens"
    )
    parser.add_argument("host")
    parser.add_argument("ports", nargs="+", help="PORT:NAME, e.g. 8000:api")
    args = parser.parse_args(argv)
    if args.wait is not None:
        return wait_for(args.host, args.ports, args.wait)
    return refuse_taken(args.host, args.ports)


if __name__ == "__main__":
    sys.exit(main())
