"""The embedded AWS emulator for local runs, tests and benchmarks: moto in server mode on
loopback.

    python -m localstack.emulator [--port 4566] [--stock] [--transaction-hold-ms N] [--capacity]

Users with Docker can run LocalStack instead (docker-compose.yml); the code under test
only ever sees `AWS_ENDPOINT_URL`.

Five changes to moto make it keep AWS's promises at a cost that does not grow with the
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
- A Query reads its partition only (`localstack.query_index`): stock moto lists and sorts
  the whole table for every Query, of the table or of an index.
- An SQS queue's attributes are computed when read, one at a time. Stock moto computes all
  of them for every message sent, to read one flag, and three of them count the messages
  in the queue: each send cost time in proportion to the queue's depth, so a backlog of a
  thousand messages slowed every publish to it (and every other request, behind it).
- Connections are kept alive, as AWS keeps them (`localstack.keep_alive`). moto's server
  closes each one after one answer, so every call opened a new connection: CPU in every
  process under test that it never spends against AWS.

Served one at a time, transactions never overlap, so the conflicts DynamoDB reports under
concurrency never happen. `--transaction-hold-ms N` (or `HERALD_EMULATOR_TRANSACTION_HOLD_MS`)
brings them back: the items a TransactWriteItems named stay in that transaction for N ms
after it is applied, before its answer is sent (other requests are served meanwhile), and
a write that names one of them is refused as DynamoDB refuses it: PutItem, UpdateItem and
DeleteItem with `TransactionConflictException`, another transaction with
`TransactionCanceledException` (reason `TransactionConflict` for that item; none of it is
applied), a repeat of the held transaction's `ClientRequestToken` with
`TransactionInProgressException`. BatchWriteItem is not checked. 0, the default, holds
nothing.

`--capacity` (or `HERALD_EMULATOR_CAPACITY=1`) meters what AWS would bill for the requests
served (DynamoDB read and write units by table, index and partition key; SQS requests; SNS
publishes) and serves the figures on `GET /_capacity` (`DELETE` resets them); see
`localstack.capacity`. Off, nothing of it is on the request path.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from localstack import query_index

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
    return query_index.primary_key(table, op.get("Item") if op_type == "Put" else op.get("Key"))


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


HOLD_ENV = "HERALD_EMULATOR_TRANSACTION_HOLD_MS"
CAPACITY_ENV = "HERALD_EMULATOR_CAPACITY"
_CONFLICT_MESSAGE = "Transaction is ongoing for the item"
_ItemId = tuple[str, str, str | None]


def _item_id(backend: Any, table_name: Any, attrs: Any) -> _ItemId | None:
    """(table, hash, range) of the item `attrs` names, comparable across requests; None
    when the table or a key is missing (moto will say why)."""
    table = backend.tables.get(table_name) if isinstance(table_name, str) else None
    if table is None or not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
        return None
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attrs:
            return None
        range_value = json.dumps(attrs[table.range_key_attr], sort_keys=True)
    return table_name, json.dumps(attrs[table.hash_key_attr], sort_keys=True), range_value


class _Holds:
    """The items of applied transactions whose answers are still held back (see the module
    docstring). Read and changed under `_LOCK` only."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.items: dict[_ItemId, object] = {}
        self.tokens: dict[str, object] = {}

    @staticmethod
    def transaction_items(backend: Any, body: dict[str, Any]) -> list[_ItemId | None]:
        named: list[_ItemId | None] = []
        for entry in body.get("TransactItems") or []:
            single = isinstance(entry, dict) and len(entry) == 1
            op_type, op = next(iter(entry.items())) if single else ("", None)
            if not isinstance(op, dict):
                named.append(None)
                continue
            attrs = op.get("Item") if op_type == "Put" else op.get("Key")
            named.append(_item_id(backend, op.get("TableName"), attrs))
        return named

    def check_single(self, backend: Any, body: dict[str, Any], attrs_key: str) -> None:
        from moto.dynamodb.exceptions import DynamodbException

        item = _item_id(backend, body.get("TableName"), body.get(attrs_key))
        if item is not None and item in self.items:
            raise DynamodbException(
                "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                _CONFLICT_MESSAGE,
            )

    def check_transaction(self, named: list[_ItemId | None], token: Any) -> None:
        from moto.dynamodb.exceptions import DynamodbException, TransactionCanceledException

        if isinstance(token, str) and token in self.tokens:
            raise DynamodbException(
                "com.amazonaws.dynamodb.v20120810#TransactionInProgressException",
                "Transaction is in progress",
            )
        if any(item is not None and item in self.items for item in named):
            raise TransactionCanceledException(
                [
                    ("TransactionConflict", _CONFLICT_MESSAGE, None)
                    if item is not None and item in self.items
                    else (None, None, None)
                    for item in named
                ]
            )

    def hold(self, named: list[_ItemId | None], token: Any) -> tuple[object, list[_ItemId], Any]:
        mark = object()
        items = [item for item in named if item is not None]
        for item in items:
            self.items[item] = mark
        if isinstance(token, str):
            self.tokens[token] = mark
        return mark, items, token

    def release(self, held: tuple[object, list[_ItemId], Any]) -> None:
        mark, items, token = held
        for item in items:
            if self.items.get(item) is mark:
                del self.items[item]
        if isinstance(token, str) and self.tokens.get(token) is mark:
            del self.tokens[token]


def _hold_transactions(handler_class: Any, holds: _Holds) -> None:
    """Check the writes of DynamoDB's handler against held items, and make a transaction
    hold its items once applied (released by `serialized` in `patch_dynamodb`)."""

    def checked(name: str, attrs_key: str) -> None:
        action = getattr(handler_class, name)

        @functools.wraps(action)
        def guarded(self: Any) -> Any:
            holds.check_single(self.dynamodb_backend, self.body, attrs_key)
            return action(self)

        setattr(handler_class, name, guarded)

    checked("put_item", "Item")
    checked("update_item", "Key")
    checked("delete_item", "Key")
    transact = handler_class.transact_write_items

    @functools.wraps(transact)
    def transact_and_hold(self: Any) -> Any:
        named = holds.transaction_items(self.dynamodb_backend, self.body)
        token = self.body.get("ClientRequestToken")
        holds.check_transaction(named, token)
        result = transact(self)
        self._herald_held = holds.hold(named, token)
        return result

    handler_class.transact_write_items = transact_and_hold


def patch_dynamodb(transaction_hold_seconds: float = 0.0, around: Any = None) -> None:
    """Serve DynamoDB requests one at a time and undo cancelled transactions item by item;
    with `transaction_hold_seconds`, hold the items of applied transactions (see the module
    docstring); with `around` (the capacity meter's hook), run each request through it,
    under the lock. Idempotent: the first call's settings stay."""
    if _PATCHED.is_set():
        return
    import moto.dynamodb.models as models
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action
    transact_write_items = models.DynamoDBBackend.transact_write_items
    holds = _Holds(transaction_hold_seconds) if transaction_hold_seconds > 0 else None
    if holds is not None:
        _hold_transactions(DynamoHandler, holds)

    @functools.wraps(call_action)
    def serialized(self: Any) -> Any:
        with _LOCK:
            try:
                result = call_action(self) if around is None else around(self, call_action)
            finally:
                query_index.note_request(self.dynamodb_backend, getattr(self, "body", None))
            held = self.__dict__.pop("_herald_held", None)
        if holds is not None and held is not None:
            time.sleep(holds.seconds)  # outside the lock: other requests go on meanwhile
            with _LOCK:
                holds.release(held)
        return result

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
    query_index.patch_query()
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


def install_capacity() -> Any:
    """The capacity meter (`localstack.capacity`) on every service and on `/_capacity`;
    returns the DynamoDB hook for `patch_dynamodb`."""
    from localstack.capacity import Meter
    from localstack.capacity_moto import install_dynamodb, install_endpoint, install_messaging

    meter = Meter()
    install_messaging(meter)
    install_endpoint(meter, _LOCK)
    return install_dynamodb(meter)


def main(argv: list[str] | None = None, wrap: Callable[[Any], Any] | None = None) -> int:
    """Serve until stopped; `wrap` puts middleware in front of moto's app (the tests'
    snapshots, `tests/support.py`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--stock", action="store_true", help="run moto unchanged")
    parser.add_argument(
        "--quiet", action="store_true", help="no line per request (errors are still logged)"
    )
    parser.add_argument(
        "--transaction-hold-ms",
        type=int,
        default=int(os.environ.get(HOLD_ENV) or 0),
        metavar="N",
        help=f"hold the items of each applied transaction for N ms (default ${HOLD_ENV} or 0)",
    )
    parser.add_argument(
        "--capacity",
        action="store_true",
        default=os.environ.get(CAPACITY_ENV, "") not in ("", "0"),
        help=f"meter AWS capacity and requests, served on /_capacity (default ${CAPACITY_ENV})",
    )
    args = parser.parse_args(argv)
    if args.transaction_hold_ms < 0:
        parser.error("--transaction-hold-ms must not be negative")
    if args.stock and args.transaction_hold_ms:
        parser.error("--transaction-hold-ms needs the patched emulator, not --stock")
    if args.stock and args.capacity:
        parser.error("--capacity needs the patched emulator, not --stock")
    if not args.stock:
        around = install_capacity() if args.capacity else None
        patch_dynamodb(args.transaction_hold_ms / 1000, around)
        patch_sqs()
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from localstack.keep_alive import serve

    serve(args.host, args.port, keep_alive=not args.stock, wrap=wrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
