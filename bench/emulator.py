"""The AWS emulator for benchmarks: moto's server without a redundant cost and a race.

    python -m bench.emulator --port 4566 [--stock]

moto 5.2.5's TransactWriteItems takes a deep copy of the table (to roll back a cancelled
transaction) once for every item in the transaction, before it applies any of them: the
copies are identical, and only the last is kept. An N-item transaction therefore copies the
whole table N times; with 2,000 items in the table a 100-item transaction takes tens of
seconds (docs/benchmarks.md shows the measurement), longer than Herald's AWS timeouts.

Here the copy is taken once per table per transaction, which is the same snapshot (and
taken again if a write from another thread disturbs it, where stock moto answers 500), and
the per-request access log is off. Nothing else changes: requests, responses, conditions
and rollback behave as in stock moto, so every count and CPU figure of the benchmark is
what stock moto would give; only the emulator's own time per transaction drops from N
copies of the table to one. `--stock` runs it unpatched.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import threading
from typing import Any

COPY_ATTEMPTS = 5


def _copy_while_written(table: Any) -> Any:
    """moto serves requests on threads without locking its tables: a write from another
    thread during the copy makes it fail with "dictionary changed size during iteration",
    which stock moto answers with a 500. The copy is simply taken again."""
    for _ in range(COPY_ATTEMPTS - 1):
        try:
            return copy.deepcopy(table)
        except RuntimeError:
            continue
    return copy.deepcopy(table)


def patch_transaction_snapshot() -> None:
    import moto.dynamodb.models as models

    local = threading.local()

    class _Copy:
        """`copy` as moto's DynamoDB models see it: within one TransactWriteItems a table
        is copied once, later requests for a copy of the same (still untouched) table get
        that copy. Every other deepcopy is the real one."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            cache = getattr(local, "tables", None)
            if cache is None or not isinstance(value, models.Table):
                return copy.deepcopy(value, memo)
            if id(value) not in cache:
                cache[id(value)] = _copy_while_written(value)
            return cache[id(value)]

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        local.tables = {}
        try:
            return original(self, transact_items)
        finally:
            local.tables = None

    models.copy = _Copy  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--stock", action="store_true", help="run moto unpatched")
    args = parser.parse_args(argv)
    if not args.stock:
        patch_transaction_snapshot()
    # A log line per request costs the emulator time that the benchmark would then blame on
    # Herald's latency; errors are still logged.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
