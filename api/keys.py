"""API keys from the command line.

    python -m api.keys create --name billing --scope events:write,events:read --owner billing
    python -m api.keys list
    python -m api.keys revoke <key_id>

`create` prints the key once; only its hash is stored. A key revoked here is refused by
running API processes once their cache of it lapses (`HERALD_API_KEY_CACHE_SECONDS`);
`DELETE /keys/{key_id}` revokes it and drops it from that API process's cache at once.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.aws.clients import AwsClients
from core.platform.settings import Settings
from core.security.api_keys import SCOPES, ApiKeyStore
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create, list and revoke API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
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
    sub.add_parser("list", help="every key, without secrets")
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    clients = AwsClients(Settings())
    store = ApiKeyStore(clients.dynamodb, clients.names.table)
    if args.command == "create":
        try:
            scopes = tuple(dict.fromkeys(args.scopes))  # in order, each once
            key, token = store.create(args.name, scopes, owner=args.owner)
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
    sys.exit(main())
