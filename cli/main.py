"""herald: the command line of a Herald stack.

    herald where                          which AWS endpoint and stack the tools use
    herald dlq list | peek Q | redrive Q  dead letters (listeners.dlq)
    herald keys create | list | revoke    API keys (cli.keys)
    herald events get EVENT_ID            an event with its notifications and history
    herald audit --since 1h               events that disagree with their records (cli.audit)

Run in any terminal while `make run` runs: the stack's settings come from its
`var/local.env` (core.platform.local_stack); every command first says, on stderr, which endpoint it
talks to, so a tool never reaches real AWS unnoticed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from core.platform.local_stack import apply_local_env


def describe(settings_file: Path | None) -> str:
    from core.platform.settings import Settings

    settings = Settings()
    endpoint = settings.aws_endpoint_url
    where = f"AWS endpoint {endpoint}" if endpoint else "real AWS (no AWS_ENDPOINT_URL)"
    source = f"settings from {settings_file}" if settings_file else "no var/local.env found"
    return (
        f"herald: {where}, region {settings.aws_region}, "
        f"resources {settings.resource_prefix}-*; {source}"
    )


def get_event(argv: list[str]) -> int:
    from api.routes.events import to_event_out
    from core.aws.clients import AwsClients
    from core.ledger.wiring import build_ledger
    from core.platform.settings import Settings
    from core.security.tenants import UNAUTHENTICATED

    parser = argparse.ArgumentParser(prog="herald events", description="Read events.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get", help="an event with its notifications and their history")
    get.add_argument("event_id")
    args = parser.parse_args(argv)
    settings = Settings()
    clients = AwsClients(settings)
    found = build_ledger(clients.dynamodb, clients.names.table).event_reads.get(args.event_id)
    if found is None:
        print(f"no event {args.event_id!r}", file=sys.stderr)
        return 1
    print(to_event_out(*found, UNAUTHENTICATED).model_dump_json(indent=2))
    return 0


def where(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="herald where", description=__doc__).parse_args(argv)
    from core.platform.settings import Settings

    settings = Settings()
    print(
        json.dumps(
            {
                "aws_endpoint_url": settings.aws_endpoint_url,
                "region": settings.aws_region,
                "resource_prefix": settings.resource_prefix,
            },
            indent=2,
        )
    )
    return 0


def _dlq(argv: list[str]) -> int:
    from listeners.dlq import main as dlq_main

    return dlq_main(argv)


def _keys(argv: list[str]) -> int:
    from cli.keys import main as keys_main

    return keys_main(argv)


def _audit(argv: list[str]) -> int:
    from cli.audit import main as audit_main

    return audit_main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "where": (where, "which endpoint and stack the tools use"),
    "dlq": (_dlq, "dead-letter queues: list, peek, redrive"),
    "keys": (_keys, "API keys: create, list, revoke"),
    "events": (get_event, "events: get EVENT_ID"),
    "audit": (_audit, "status, tallies, records and providers in agreement"),
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        lines = [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: herald COMMAND ...\n\ncommands:\n" + "\n".join(lines), file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    settings_file = apply_local_env()
    print(describe(settings_file), file=sys.stderr)
    command, _ = COMMANDS[args[0]]
    try:
        return command(args[1:])
    except BrokenPipeError:  # `herald dlq list | head`: the reader has seen enough
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
