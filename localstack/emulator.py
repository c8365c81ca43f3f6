"""The embedded AWS emulator for local runs, tests and benchmarks: moto in server mode on
loopback.

    python -m localstack.emulator [--port 4566] [--stock]

Users with Docker can run LocalStack instead (docker-compose.yml); the code under test
only ever sees `AWS_ENDPOINT_URL`.

Three changes to moto make it keep AWS's promises at a cost that does not grow with the
table or the queue (`--stock` leaves them out, for comparison):

- Requests are served one at a time. moto serves each request on its own thread without
  locking its tables, so a transaction's writes could interleave with another request's.
- A TransactWriteItems undoes a cancellation item by item. Stock moto deep-copies the whole
  table once per item of the transaction (identical copies, only the last kept) and, when
  the transaction is cancelled, puts that copy back, undoing every write other requests
  made meanwhile (a SENT mark reverts to SENDING). Here the transaction records the
  before-image of each item it names, moto's table copies are skipped, and a cancelled
  transaction puts back exactly those items. Answers, conditions and cancellation reasons
  are moto's own; a transaction now costs time in proportion to its items, not to the
  table (a 100-item transaction on a 2,000-item table: tens of seconds stock).
- An SQS queue's attributes are computed when read, one at a time. Stock moto computes all
  of them for every message sent, to read one flag, and three of them count the messages
  in the queue: each send cost time in proportion to the queue's depth, so a backlog of a
  thousand messages slowed every publish to it (and every other request, behind it).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

_PATCHED = threading.Event()
_LOCK = threading.RLock()


class _NoTableCopy:
    """`copy` as moto's DynamoDB backend sees it: while a transaction runs (under the lock),
    copying a table returns the table itself, because rollback is done item by item."""

    in_transaction = False

    @classmethod
    def deepcopy(cls, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if cls.in_transaction and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _key_of(table: Any, op_type: str, op: dict[str, Any]) -> tuple[Any, Any] | None:
    """The (hash, range) an operation names, or None when malformed (moto will say why)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    attrs = op.get("Item") if op_type == "Put" else op.get("Key")
    if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
        return None
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attrs:
            return None
        range_value = DynamoType(attrs[table.range_key_attr])
    return DynamoType(attrs[table.hash_key_attr]), range_value


def _before_images(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple]:
    """(table, hash, range, a copy of the item or None) for every item the transaction
    names, read before any of it is applied."""
    images: list[tuple] = []
    for entry in transact_items:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        op_type, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        if table is None:
            continue
        key = _key_of(table, op_type, op)
        if key is None:
            continue
        current = table.get_item(*key)
        images.append((table, *key, copy.deepcopy(current)))
    return images


def _restore(images: list[tuple]) -> None:
    for table, hash_value, range_value, item in reversed(images):
        if item is None:
            table.delete_item(hash_value, range_value)
        elif range_value is not None:
            table.items[hash_value][range_value] = item
        else:
            table.items[hash_value] = item


def patch_dynamodb() -> None:
    """Serve DynamoDB requests one at a time and undo cancelled transactions item by item
    (see the module docstring). Idempotent."""
    if _PATCHED.is_set():
        return
    import moto.dynamodb.models as models
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action
    transact_write_items = models.DynamoDBBackend.transact_write_items

    @functools.wraps(call_action)
    def serialized(self: Any) -> Any:
        with _LOCK:
            return call_action(self)

    @functools.wraps(transact_write_items)
    def item_level_undo(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _LOCK:
            images = _before_images(self, transact_items)
            _NoTableCopy.in_transaction = True
            try:
                transact_write_items(self, transact_items)
            except BaseException:
                _restore(images)
                raise
            finally:
                _NoTableCopy.in_transaction = False

    DynamoHandler.call_action = serialized  # type: ignore[method-assign]
    models.copy = _NoTableCopy  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = item_level_undo  # type: ignore[method-assign]
    _PATCHED.set()


class _QueueAttributes(Mapping[str, Any]):
    """A queue's attributes as stock moto's `Queue.attributes` gives them, each computed
    when it is read."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = names

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        value = getattr(queue, camelcase_to_underscores(name))
        if name == "Policy" and queue.policy:
            value = queue.policy
        elif name == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def patch_sqs() -> None:
    """Queue attributes computed when read (see the module docstring)."""
    from moto.sqs.models import Queue

    Queue.attributes = property(_QueueAttributes)  # type: ignore[assignment,method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--stock", action="store_true", help="run moto unchanged")
    parser.add_argument(
        "--quiet", action="store_true", help="no line per request (errors are still logged)"
    )
    args = parser.parse_args(argv)
    if not args.stock:
        patch_dynamodb()
        patch_sqs()
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import main as moto_main

    moto_main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
