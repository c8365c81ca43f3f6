"""Where the capacity meter (`localstack.capacity`) meets moto: the before- and after-images
of the items each DynamoDB request names, the items Query and Scan read before their
filter, the SQS and SNS requests, and `/_capacity` on the emulator's HTTP port.

Installed only when the emulator runs with `--capacity`; otherwise none of this is on the
request path.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from localstack.capacity import (
    CHUNK,
    PATH,
    TABLE,
    Image,
    Meter,
    attributes_json_size,
    item_size,
    read_units,
)

# A request carrying this header is served but not metered: a benchmark's own reads (its
# polling for results) are not part of what it measures.
UNMETERED = "X-Herald-Unmetered"
_WRITES = {"PutItem": "Item", "UpdateItem": "Key", "DeleteItem": "Key"}
_TRANSACT_KEYS = {"Put": "Item", "Update": "Key", "Delete": "Key", "ConditionCheck": "Key"}


def _lookup(backend: Any, table_name: Any, attrs: Any) -> tuple[Any, Any, Any] | None:
    """(table, hash, range) of the item `attrs` names; None when malformed."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    table = backend.tables.get(table_name) if isinstance(table_name, str) else None
    if table is None or not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
        return None
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attrs:
            return None
        range_value = DynamoType(attrs[table.range_key_attr])
    return table, DynamoType(attrs[table.hash_key_attr]), range_value


def _image(named: tuple[Any, Any, Any]) -> Image | None:
    table, hash_value, range_value = named
    return Image.of(table.get_item(hash_value, range_value))


def _size(named: tuple[Any, Any, Any]) -> int:
    table, hash_value, range_value = named
    item = table.get_item(hash_value, range_value)
    return item_size(item) if item is not None else 0


class _Pending:
    """One write request's items, with their before-images."""

    def __init__(self) -> None:
        # (op, named, before, size asked for)
        self.items: list[tuple[str, tuple[Any, Any, Any], Image | None, int]] = []


def _plan(backend: Any, action: str, body: dict[str, Any]) -> _Pending | None:
    pending = _Pending()
    if action in _WRITES:
        attrs = body.get(_WRITES[action])
        named = _lookup(backend, body.get("TableName"), attrs)
        if named is not None:
            asked = attributes_json_size(attrs or {}) if action == "PutItem" else 0
            pending.items.append((action, named, _image(named), asked))
    elif action == "BatchWriteItem":
        for table_name, requests in (body.get("RequestItems") or {}).items():
            for request in requests or []:
                put = (request.get("PutRequest") or {}).get("Item")
                attrs = put if put is not None else (request.get("DeleteRequest") or {}).get("Key")
                named = _lookup(backend, table_name, attrs)
                if named is not None:
                    kind = "PutItem" if put is not None else "DeleteItem"
                    pending.items.append((kind, named, _image(named), 0))
    elif action == "TransactWriteItems":
        for entry in body.get("TransactItems") or []:
            if not isinstance(entry, dict) or len(entry) != 1:
                continue
            kind, op = next(iter(entry.items()))
            if kind not in _TRANSACT_KEYS or not isinstance(op, dict):
                continue
            attrs = op.get(_TRANSACT_KEYS[kind])
            named = _lookup(backend, op.get("TableName"), attrs)
            if named is not None:
                asked = attributes_json_size(attrs or {}) if kind == "Put" else 0
                pending.items.append((kind, named, _image(named), asked))
    else:
        return None
    return pending


def item_kind(range_value: Any) -> str:
    """What an item is, from its sort key (`NOTIF#sms#u1` is a `NOTIF`), so the report
    can say which items the units went to."""
    text = str(range_value.value) if hasattr(range_value, "value") else str(range_value or "")
    return "EVENT#TALLY" if text.startswith("EVENT#TALLY") else text.split("#", 1)[0]


def _pk(image: Image | None, table: Any) -> str | None:
    return image.value(table.hash_key_attr) if image is not None else None


def _settle_writes(
    meter: Meter, action: str, pending: _Pending, status: int, body: str, at: float
) -> None:
    refused = "ConditionalCheckFailed" in body
    cancelled = "TransactionCanceled" in body
    for kind, named, before, asked in pending.items:
        table = named[0]
        op = action if action != "TransactWriteItems" else f"TransactWriteItems.{kind}"
        kind_of_item = item_kind(named[2])
        op = f"{op} {kind_of_item}" if kind_of_item else op
        if status == 200:
            if kind == "ConditionCheck":  # billed as a transactional write of the item
                size = before.size if before else 0
                meter.refused(table, op, _pk(before, table), size, at, factor=2)
            else:
                factor = 2 if action == "TransactWriteItems" else 1
                meter.write(table, op, before, _image(named), at, factor=factor)
        elif (refused and action in _WRITES) or (cancelled and action == "TransactWriteItems"):
            size = max(before.size if before else 0, asked)
            pk = _pk(before, table) or str(named[1].value)
            meter.refused(table, op, pk, size, at)


def _settle_reads(meter: Meter, action: str, backend: Any, body: dict[str, Any], at: float) -> None:
    if action == "GetItem":
        named = _lookup(backend, body.get("TableName"), body.get("Key"))
        if named is not None:
            factor = 1.0 if body.get("ConsistentRead") else 0.5
            size = _size(named)
            meter.read(named[0].name, TABLE, action, str(named[1].value), size, factor, at)
    elif action == "BatchGetItem":
        for table_name, spec in (body.get("RequestItems") or {}).items():
            factor = 1.0 if spec.get("ConsistentRead") else 0.5
            for key in spec.get("Keys") or []:
                named = _lookup(backend, table_name, key)
                if named is not None:
                    size = _size(named)
                    meter.read(named[0].name, TABLE, action, str(named[1].value), size, factor, at)
    elif action == "TransactGetItems":
        for entry in body.get("TransactItems") or []:
            get = entry.get("Get") if isinstance(entry, dict) else None
            if not isinstance(get, dict):
                continue
            named = _lookup(backend, get.get("TableName"), get.get("Key"))
            if named is not None:
                size = _size(named)
                meter.read(named[0].name, TABLE, action, str(named[1].value), size, 2.0, at)


def _settle_scan(
    meter: Meter, action: str, body: dict[str, Any], reads: list[tuple[str, str, str | None, int]]
) -> None:
    """A Query or Scan request: its items' sizes summed, rounded up to 4 KB once."""
    at = time.time()
    factor = 1.0 if body.get("ConsistentRead") else 0.5
    target = body.get("IndexName") or TABLE
    table = body.get("TableName")
    if not isinstance(table, str):
        return
    total = sum(size for _, _, _, size in reads)
    keys = {pk for _, _, pk, _ in reads}
    pk = next(iter(keys)) if len(keys) == 1 else None
    units = read_units(total) * factor
    meter.charge(table, target, action, pk, at, rcu=units)


def _meter_reads(meter: Meter, method: Any, filter_name: str, projection_name: str) -> Any:
    """Table.query / Table.scan run without their filter and projection, the items they
    read recorded, then filtered and projected as moto would have."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def metered(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads = meter.reads
        if reads is None:
            return method(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        arguments = bound.arguments
        expression = arguments.get(filter_name)
        projection = arguments.get(projection_name)
        arguments[filter_name] = None
        arguments[projection_name] = None
        results, scanned, last = method(*bound.args, **bound.kwargs)
        pk = None
        conditions = arguments.get("hash_key_conditions")
        if conditions:
            pk = str(conditions[0][1].value)
        elif arguments.get("hash_key") is not None:
            pk = str(arguments["hash_key"].value)
        index = arguments.get("index_name") or TABLE
        for item in results:
            reads.append((self.name, index, pk, item_size(item)))
        if expression is not None:
            results = [item for item in results if expression.expr(item)]
        if projection:
            results = [r.project(projection) for r in results]
        return results, scanned, last

    return metered


def _text(body: Any) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return str(body or "")


def install_dynamodb(meter: Meter) -> Any:
    """Patch moto's tables to record what Query and Scan read; returns the hook that the
    emulator's serialized `call_action` runs around each request (under its lock)."""
    from moto.dynamodb.models.table import Table

    Table.query = _meter_reads(meter, Table.query, "filter_expression", "projection_expressions")  # type: ignore[method-assign]
    Table.scan = _meter_reads(meter, Table.scan, "filter_expression", "projection_expression")  # type: ignore[method-assign]

    def around(handler: Any, call: Any) -> Any:
        if handler.headers.get(UNMETERED):
            return call(handler)
        target = handler.headers.get("X-Amz-Target") or handler.headers.get("x-amz-target") or ""
        action = target.split(".")[-1]
        params = getattr(handler, "params", None)  # what moto parsed; `body` is set later
        body = params if isinstance(params, dict) else {}
        backend = handler.dynamodb_backend
        meter.requests[action] += 1
        pending = _plan(backend, action, body)
        if action in ("Query", "Scan"):
            meter.reads = []
        try:
            result = call(handler)
        finally:
            reads, meter.reads = meter.reads, None
        status = int(result[0]) if isinstance(result, tuple) else 200
        at = time.time()
        if pending is not None:
            _settle_writes(meter, action, pending, status, _text(result[2]), at)
        elif status == 200 and reads is not None:
            _settle_scan(meter, action, body, reads)
        elif status == 200:
            _settle_reads(meter, action, backend, body, at)
        return result

    return around


# --- SQS and SNS ---------------------------------------------------------------------


def _chunks(payload: int) -> int:
    return max(1, math.ceil(payload / CHUNK))


def _sqs_entry_payload(body: Any, attributes: Any) -> int:
    size = len(_text(body).encode())
    if attributes:
        size += len(json.dumps(attributes, default=str).encode())
    return size


def _sqs_billed(handler: Any, action: str) -> int:
    if action == "SendMessage":
        payload = _sqs_entry_payload(
            handler._get_param("MessageBody"), handler._get_param("MessageAttributes")
        )
        return _chunks(payload)
    if action == "SendMessageBatch":
        entries = handler._get_param("Entries") or []
        payload = sum(
            _sqs_entry_payload(e.get("MessageBody"), e.get("MessageAttributes")) for e in entries
        )
        return _chunks(payload)
    return 1


def _sns_billed(handler: Any, action: str) -> int:
    """A PublishBatch is one request (its payload in 64 KB chunks): AWS documents batching
    as cutting publish costs by up to 10x, so its entries are not billed one by one."""
    if action == "Publish":
        return _chunks(len(_text(handler._get_param("Message")).encode()))
    if action == "PublishBatch":
        entries = handler._get_param("PublishBatchRequestEntries") or []
        return _chunks(sum(len(_text(e.get("Message")).encode()) for e in entries))
    return 1


def _messages(handler: Any, action: str) -> int:
    """Messages a request carries (sent or published), billed or not."""
    if action in ("SendMessage", "Publish"):
        return 1
    if action == "SendMessageBatch":
        return len(handler._get_param("Entries") or [])
    if action == "PublishBatch":
        return len(handler._get_param("PublishBatchRequestEntries") or [])
    return 0


def install_messaging(meter: Meter) -> None:
    from moto.sns.responses import SNSResponse
    from moto.sqs.responses import SQSResponse

    for service, cls, billed in (
        ("sqs", SQSResponse, _sqs_billed),
        ("sns", SNSResponse, _sns_billed),
    ):
        original = cls.call_action

        def counted(
            self: Any, _original: Any = original, _service: str = service, _billed: Any = billed
        ) -> Any:
            if self.headers.get(UNMETERED):
                return _original(self)
            action = self._get_action() or ""
            try:
                units, messages = _billed(self, action), _messages(self, action)
            except (AttributeError, KeyError, TypeError, ValueError):
                units, messages = 1, 0
            result = _original(self)
            empty = action == "ReceiveMessage" and "MessageId" not in _text(result[2])
            meter.count(_service, action, units, empty=empty, messages=messages)
            return result

        cls.call_action = counted  # type: ignore[method-assign]


# --- /_capacity ----------------------------------------------------------------------


def install_endpoint(meter: Meter, lock: threading.RLock) -> None:
    """`GET /_capacity[?top=N]` answers the meter's report, `DELETE /_capacity` resets it."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__

    def dispatch(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != PATH:
            return original(self, environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "DELETE":
            with lock:
                meter.reset()
            payload: dict[str, Any] = {"reset": True}
        elif method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            try:
                top = int(query.get("top", ["10"])[0])
            except ValueError:
                top = 10
            with lock:
                payload = meter.report(top=top)
        else:
            start_response("405 Method Not Allowed", [("Content-Type", "application/json")])
            return [b'{"error": "GET or DELETE"}']
        data = json.dumps(payload).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    DomainDispatcherApplication.__call__ = dispatch  # type: ignore[method-assign]
