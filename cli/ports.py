"""Refuse to start a stack on ports that are taken.

    python -m cli.ports 127.0.0.1 8000:api 4566:emulator 8025:sandbox

Without it `make run` crash-loops a server whose port is busy and, worse, lets the other
programs talk to whatever already listens there (another emulator, another stack).
"""

from __future__ import annotations

import argparse
import socket
import sys


def busy(host: str, port: int) -> bool:
    """Whether something already listens on host:port (a connect succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exit 1 naming each taken port.")
    parser.add_argument("host")
    parser.add_argument("ports", nargs="+", help="PORT:NAME, e.g. 8000:api")
    args = parser.parse_args(argv)
    taken = []
    for spec in args.ports:
        port, _, name = spec.partition(":")
        if busy(args.host, int(port)):
            taken.append(f"{args.host}:{port} ({name or 'port'})")
    if taken:
        print(
            f"Herald: cannot start: {', '.join(taken)} already in use. Stop what listens "
            "there (`make stop` if it is an earlier `make run`), or choose other ports, e.g. "
            "`make run HERALD_API_PORT=8001 HERALD_EMULATOR_PORT=4567 HERALD_SANDBOX_PORT=8026`.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
