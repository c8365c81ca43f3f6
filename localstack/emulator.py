"""The embedded AWS emulator for local runs: moto in server mode on loopback.

    python -m localstack.emulator [--port 4566]

Users with Docker can run LocalStack instead (docker-compose.yml); the code under test
only ever sees `AWS_ENDPOINT_URL`.

DynamoDB requests are served one at a time here. moto rolls back a cancelled
TransactWriteItems by putting back a copy of the whole table taken when the transaction
began, with no lock: every write another request made in the meantime is undone. Herald's
claims and counted creations are transactions that are cancelled in normal operation
(a record already moved on), so under concurrent load stock moto loses unrelated writes
(a SENT mark reverts to SENDING) that real DynamoDB never would. One lock per process
restores what DynamoDB guarantees; moto serves requests under one interpreter lock anyway.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
from typing import Any

_PATCHED = threading.Event()


def serialize_dynamodb_requests() -> None:
    """Serve DynamoDB requests one at a time (see the module docstring). Idempotent."""
    if _PATCHED.is_set():
        return
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    call_action = DynamoHandler.call_action

    @functools.wraps(call_action)
    def serialized(self: Any) -> Any:
        with lock:
            return call_action(self)

    DynamoHandler.call_action = serialized  # type: ignore[method-assign]
    _PATCHED.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    serialize_dynamodb_requests()
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
