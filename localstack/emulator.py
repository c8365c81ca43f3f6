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

moto also takes that table copy once per item of the transaction (only the last is kept):
a 100-item transaction copies the whole table a hundred times, which under load costs
seconds per call and gigabytes of garbage. With requests served one at a time the copies
are identical, so one per table per transaction is taken; rollback behaves as before.
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
import threading
from typing import Any

_PATCHED = threading.Event()


class _SnapshotOnce:
    """`copy` as moto's DynamoDB backend sees it: while one TransactWriteItems runs, every
    copy of the same table is the first one. Every other deepcopy is the real one."""

    tables: dict[int, Any] | None = None

    @classmethod
    def deepcopy(cls, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if cls.tables is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) not in cls.tables:
            cls.tables[id(value)] = copy.deepcopy(value, memo)
        return cls.tables[id(value)]


def serialize_dynamodb_requests() -> None:
    """Serve DynamoDB requests one at a time, and snapshot a table once per transaction
    (see the module docstring). Idempotent."""
    if _PATCHED.is_set():
        return
    import moto.dynamodb.models as models
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    call_action = DynamoHandler.call_action
    transact_write_items = models.DynamoDBBackend.transact_write_items

    @functools.wraps(call_action)
    def serialized(self: Any) -> Any:
        with lock:
            return call_action(self)

    @functools.wraps(transact_write_items)
    def snapshot_once(self: Any, transact_items: list[dict[str, Any]]) -> None:
        _SnapshotOnce.tables = {}  # safe: the lock above lets one request in at a time
        try:
            transact_write_items(self, transact_items)
        finally:
            _SnapshotOnce.tables = None

    DynamoHandler.call_action = serialized  # type: ignore[method-assign]
    models.copy = _SnapshotOnce  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = snapshot_once  # type: ignore[method-assign]
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
