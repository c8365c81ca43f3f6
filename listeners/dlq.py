"""Dead-letter queues from the command line.

python -m listeners.dlq list
python -m listeners.dlq peek sms-normal [--limit 10]
python -m listeners.dlq redrive sms-normal [--id MESSAGE_ID ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from core.aws.clients import AwsClients
from core.directory.users import UserStore
from core.ledger.shard_layout import ShardLayout
from core.ledger.wiring import build_ledger
from core.operations.dead_letters import DeadLetters, UnknownQueue
from core.platform.settings import Settings


def build(settings: Settings) -> DeadLetters:
    clients = AwsClients(settings)
    table = clients.names.table
    return DeadLetters(
        clients,
        build_ledger(
            clients.dynamodb, table, settings.event_retention_days, ShardLayout.of(settings)
        ),
        UserStore(clients.dynamodb, table),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Inspect and replay dead-letter queues.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="depth of every DLQ")
    peek = sub.add_parser("peek", help="show messages without consuming them")
    peek.add_argument("queue", help="work queue without the prefix, e.g. sms-normal")
    peek.add_argument("--limit", type=int, default=10)
    redrive = sub.add_parser("redrive", help="send messages back to their queue")
    redrive.add_argument("queue")
    redrive.add_argument("--id", action="append", dest="ids", help="only this message id")
    args = parser.parse_args(argv)

    dead_letters = build(Settings())
    try:
        if args.command == "list":
            result: object = dead_letters.depths()
        elif args.command == "peek":
            result = dead_letters.peek(args.queue, args.limit)
        else:
            ids = set(args.ids) if args.ids else None
            result = asdict(dead_letters.redrive(args.queue, ids))
    except UnknownQueue as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
