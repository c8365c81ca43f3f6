"""herald keys: create, list and revoke API keys from the command line (AWS credentials).

    herald keys create --name billing --scope events:write --owner billing \\
        --inline-prefixes +1,+44 --inline-daily-quota 200
    herald keys list
    herald keys revoke <key_id>
    (python -m cli.keys ... where the herald command is not installed)

`create` prints the key once; only its hash is stored. `--inline-prefixes` and
`--inline-daily-quota` are the key's own limits on inline recipients, within the
deployment's (core/security/inline_recipients.py). Only here (and as the bootstrap key) is
an `operator` key made. A key revoked here is refused by running API processes once their
cache of it lapses (`HERALD_API_KEY_CACHE_SECONDS`).
"""

from __future__ import annotations

import argparse
import json
import sys

from core.security.api_keys import SCOPES, check_inline_limits
from core.security.tenants import DEFAULT_TENANT


def scope_list(value: str) -> list[str]:
    """`events:write,events:read` as two scopes; an unknown one names itself."""
    scopes = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scope {', '.join(unknown) or repr(value)}; choose from {', '.join(SCOPES)}"
        )
    return scopes


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="herald keys", description="Create, list, revoke keys.")
    sub = top.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="a new key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        action="extend",
        required=True,
        type=scope_list,
        dest="scopes",
        metavar="SCOPE[,SCOPE...]",
        help=f"one or more of {', '.join(SCOPES)}, comma-separated; may repeat",
    )
    create.add_argument(
        "--owner",
        default=DEFAULT_TENANT,
        help="the tenant whose events, users and topics the key sees (default: default)",
    )
    create.add_argument(
        "--inline-prefixes",
        metavar="+1,+44",
        help="E.164 prefixes the key's inline SMS/WhatsApp numbers must start with",
    )
    create.add_argument(
        "--inline-daily-quota",
        type=int,
        metavar="N",
        help="inline recipients a UTC day for this key (default: HERALD_INLINE_DAILY_QUOTA; "
        "0: no quota)",
    )
    sub.add_parser("list", help="every key, without secrets")
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    return top


def main(argv: list[str]) -> int:
    from core.aws.clients import AwsClients
    from core.platform.settings import Settings
    from core.security.api_keys import ApiKeyStore

    args = parser().parse_args(argv)
    clients = AwsClients(Settings())
    store = ApiKeyStore(clients.dynamodb, clients.names.table)
    if args.command == "create":
        try:
            prefixes, quota = check_inline_limits(args.inline_prefixes, args.inline_daily_quota)
            key, token = store.create(
                args.name,
                tuple(dict.fromkeys(args.scopes)),  # in order, each once
                owner=args.owner,
                inline_prefixes=prefixes,
                inline_daily_quota=quota,
            )
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        print(json.dumps({**key.public(), "api_key": token}, indent=2))
    elif args.command == "list":
        print(json.dumps([k.public() for k in store.list_keys()], indent=2))
    else:
        if not store.revoke(args.key_id):
            print(f"no key {args.key_id!r}", file=sys.stderr)
            return 1
        print(json.dumps({"revoked": args.key_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
