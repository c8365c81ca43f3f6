"""`python -m localstack.faults`: the fault proxy in the foreground (see the package
docstring)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from localstack.faults import FaultProxy, FaultRule, aws_under_load, rules_from_json


def _rules(value: str) -> list[FaultRule]:
    """`--rules`: JSON, or the path of a JSON file."""
    try:
        text = value if value.lstrip().startswith(("[", "{")) else Path(value).read_text()
        return rules_from_json(json.loads(text))
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localstack.faults", description="AWS faults in front of the emulator."
    )
    parser.add_argument("--upstream", required=True, help="the emulator's URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4567)
    parser.add_argument("--seed", type=int, default=None, help="make the faults reproducible")
    parser.add_argument("--rules", type=_rules, default=[], help="a JSON file, or JSON")
    parser.add_argument(
        "--under-load", type=float, metavar="RATE", help="add aws_under_load(RATE) to the rules"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per injected fault")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s"
    )
    rules = list(args.rules)
    if args.under_load is not None:
        rules += aws_under_load(args.under_load)
    proxy = FaultProxy(args.upstream, host=args.host, port=args.port, seed=args.seed)
    proxy.set_rules(rules)

    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with proxy:
        print(f"faults: {proxy.url} -> {args.upstream}, {len(rules)} rules", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
