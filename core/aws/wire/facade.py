"""A botocore client whose hot operations take the lean path.

`client.update_item(...)`, `client.receive_message(...)`: the operations named in
`LEAN_OPERATIONS` go through `WireClient`; everything else (`meta`, `exceptions`,
paginators, waiters, control-plane calls) is botocore's client itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.aws.wire.calls import WireClient

# The data-plane operations Herald calls per event and notification. DynamoDB's and SQS's
# requests and answers carry no timestamps, and blobs only where handled (SQS binary
# attributes), so the wire JSON is exactly what botocore would send and return; SNS's are
# written and read by botocore's own query serializer and parser.
LEAN_OPERATIONS: dict[str, dict[str, str]] = {
    "dynamodb": {
        "get_item": "GetItem",
        "put_item": "PutItem",
        "update_item": "UpdateItem",
        "delete_item": "DeleteItem",
        "query": "Query",
        "scan": "Scan",
        "batch_get_item": "BatchGetItem",
        "batch_write_item": "BatchWriteItem",
        "transact_write_items": "TransactWriteItems",
        "transact_get_items": "TransactGetItems",
    },
    "sqs": {
        "send_message": "SendMessage",
        "send_message_batch": "SendMessageBatch",
        "receive_message": "ReceiveMessage",
        "delete_message": "DeleteMessage",
        "delete_message_batch": "DeleteMessageBatch",
        "change_message_visibility": "ChangeMessageVisibility",
        "change_message_visibility_batch": "ChangeMessageVisibilityBatch",
        "get_queue_url": "GetQueueUrl",
        "get_queue_attributes": "GetQueueAttributes",
    },
    "sns": {
        "publish": "Publish",
        "publish_batch": "PublishBatch",
    },
}


class LeanClient:
    """Looks like the botocore client it wraps."""

    def __init__(self, botocore_client: Any, wire: WireClient) -> None:
        self._botocore = botocore_client
        self._wire = wire
        self._lean = LEAN_OPERATIONS.get(wire.service, {})
        self._methods: dict[str, Callable[..., dict[str, Any]]] = {}

    @property
    def botocore(self) -> Any:
        """The wrapped client (its calls take botocore's own path)."""
        return self._botocore

    @property
    def wire(self) -> WireClient:
        return self._wire

    def __getattr__(self, name: str) -> Any:
        operation = self._lean.get(name)
        if operation is None:
            return getattr(self._botocore, name)
        method = self._methods.get(name)
        if method is None:
            call = self._wire.call

            def method(**params: Any) -> dict[str, Any]:
                return call(operation, params)

            method.__name__ = name
            self._methods[name] = method
        return method
