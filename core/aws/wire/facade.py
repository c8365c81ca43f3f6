"""A botocore client whose hot operations take the lean path.

`client.update_item(...)`, `client.receive_message(...)`: the operations named in
`LEAN_OPERATIONS` go through `WireClient`; everything else (`meta`, `exceptions`,
paginators, waiters, control-plane calls) is botocore's client itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.aws.wire.calls import WireClient

# The data-plane operations Herald calls per event and notification, by the client's method
# names (the API names are the client's own `method_to_api_mapping`). DynamoDB's and SQS's
# requests and answers carry no timestamps, and blobs only where handled (SQS binary
# attributes), so the wire JSON is exactly what botocore would send and return; SNS's are
# written and read by botocore's own query serializer and parser.
LEAN_OPERATIONS: dict[str, frozenset[str]] = {
    "dynamodb": frozenset(
        {
            "get_item",
            "put_item",
            "update_item",
            "delete_item",
            "query",
            "scan",
            "batch_get_item",
            "batch_write_item",
            "transact_write_items",
            "transact_get_items",
        }
    ),
    "sqs": frozenset(
        {
            "send_message",
            "send_message_batch",
            "receive_message",
            "delete_message",
            "delete_message_batch",
            "change_message_visibility",
            "change_message_visibility_batch",
            "get_queue_url",
            "get_queue_attributes",
        }
    ),
    "sns": frozenset({"publish", "publish_batch"}),
}


class LeanClient:
    """Looks like the botocore client it wraps."""

    def __init__(self, botocore_client: Any, wire: WireClient) -> None:
        self._botocore = botocore_client
        self._wire = wire
        self._lean = LEAN_OPERATIONS.get(wire.service, frozenset())
        self._methods: dict[str, Callable[..., dict[str, Any]]] = {}

    @property
    def botocore(self) -> Any:
        """The wrapped client (its calls take botocore's own path)."""
        return self._botocore

    @property
    def wire(self) -> WireClient:
        return self._wire

    def __getattr__(self, name: str) -> Any:
        if name not in self._lean:
            return getattr(self._botocore, name)
        method = self._methods.get(name)
        if method is None:
            call = self._wire.call
            operation = self._botocore.meta.method_to_api_mapping[name]

            def method(**params: Any) -> dict[str, Any]:
                return call(operation, params)

            method.__name__ = name
            self._methods[name] = method
        return method
