"""One AWS JSON-protocol call: serialize, sign, send, parse, and retry as botocore would.

The request is botocore's for the operation (`X-Amz-Target`, the protocol's content type,
SQS's query-mode header, an idempotency token where the model asks for one) with the
parameters as the wire JSON they already are (bytes as base64, as botocore sends blobs).
The answer is parsed as botocore parses it: the JSON as is, `ResponseMetadata` added; an
error as a `ClientError` of the modeled class, with `Error.Code`, `Error.Message`, the
modeled fields (a transaction's `CancellationReasons`, a refused write's `Item`) at the top
level and, for SQS, the code botocore reports (the `x-amzn-query-error` one).

Retries are botocore's standard mode, with botocore's own objects: the same retryable
conditions (throttling, transient codes and statuses, connection errors, a DynamoDB answer
whose CRC32 does not match its body), the same backoff and the same retry quota, over
`max_attempts` tries in all.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError
from botocore.retries import quota
from botocore.retries.standard import (
    ExponentialBackoff,
    RetryContext,
    RetryEventAdapter,
    RetryQuotaChecker,
    StandardRetryConditions,
    ThrottlingErrorDetector,
)

from core.aws.wire.connections import ConnectionPool, Reply
from core.aws.wire.signing import SigV4Signer

# Told of every call when it ends: (service, operation, error code or None, retries).
CallObserver = Callable[[str, str, str | None, int], None]

# Told of every call before it is sent: (operation, parameters); botocore's
# `provide-client-params` for the lean path.
CallWatcher = Callable[[str, dict[str, Any]], None]

USER_AGENT = "herald-wire/1 (+botocore-compatible)"


@dataclass(frozen=True)
class _Operation:
    model: Any  # botocore OperationModel
    target: str
    idempotent: tuple[str, ...]


class _HttpResponse:
    """What botocore's retry conditions read of an answer."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, reply: Reply) -> None:
        self.status_code = reply.status
        self.headers = reply.headers
        self.content = reply.content


class JsonProtocolClient:
    """Calls one service's JSON-protocol operations; `client` is botocore's client of that
    service, whose model, exception classes and region the calls share."""

    def __init__(
        self,
        client: Any,
        pool: ConnectionPool,
        signer: SigV4Signer,
        *,
        max_attempts: int,
        observers: list[CallObserver] | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self._client = client
        self._model = client.meta.service_model
        self.service = self._model.service_name
        self._pool = pool
        self._signer = signer
        self._observers = observers or []
        self.watchers: list[CallWatcher] = []
        self._sleep = sleep
        version = self._model.metadata.get("jsonVersion", "1.0")
        self._content_type = f"application/x-amz-json-{version}"
        self._query_compatible = bool(self._model.is_query_compatible)
        self._operations: dict[str, _Operation] = {}
        detector = ThrottlingErrorDetector(RetryEventAdapter())
        self._conditions = StandardRetryConditions(max_attempts=max_attempts)
        self._backoff = ExponentialBackoff(
            service_name=self._model.service_id.hyphenize(), throttling_detector=detector
        )
        self._retry_quota = quota.RetryQuota()
        self._quota = RetryQuotaChecker(self._retry_quota, detector)

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        op = self._operation(operation)
        params = {k: v for k, v in params.items() if v is not None}
        for watcher in self.watchers:
            watcher(operation, params)
        for name in op.idempotent:  # one token for every try of this call, as botocore
            params.setdefault(name, str(uuid.uuid4()))
        body = json.dumps(params, separators=(",", ":"), default=_blob).encode("utf-8")
        attempt = 0
        request_context: dict[str, Any] = {}
        while True:
            attempt += 1
            reply: Reply | None = None
            parsed: dict[str, Any] | None = None
            caught: Exception | None = None
            try:
                reply = self._send(op, body)
                parsed = self._parse(operation, reply)
            except BotoCoreError as exc:
                caught = exc
            context = RetryContext(
                attempt_number=attempt,
                operation_model=op.model,
                parsed_response=parsed,
                http_response=_HttpResponse(reply) if reply is not None else None,
                caught_exception=caught,
                request_context=request_context,
            )
            failed = caught is not None or reply is None or reply.status >= 300
            retry = self._conditions.is_retryable(context)
            if retry and self._quota.acquire_retry_quota(context):
                self._sleep(self._backoff.delay_amount(context))
                continue
            if retry and operation == "ReceiveMessage":  # a long poll out of quota waits too
                self._sleep(self._backoff.delay_amount(context))
            if not failed:
                assert parsed is not None and reply is not None
                self._release_quota(request_context)
                parsed["ResponseMetadata"]["RetryAttempts"] = attempt - 1
                self._observe(operation, None, attempt - 1)
                return parsed
            if caught is not None:
                self._observe(operation, type(caught).__name__, attempt - 1)
                raise caught
            assert parsed is not None
            parsed["ResponseMetadata"]["RetryAttempts"] = attempt - 1
            code = parsed["Error"]["Code"]
            self._observe(operation, code, attempt - 1)
            error_class = self._client.exceptions.from_code(
                parsed["Error"].get("QueryErrorCode") or code
            )
            raise error_class(parsed, operation)

    # --- internals ------------------------------------------------------------------------

    def _operation(self, name: str) -> _Operation:
        op = self._operations.get(name)
        if op is None:
            model = self._model.operation_model(name)
            op = _Operation(
                model,
                f"{self._model.metadata['targetPrefix']}.{name}",
                tuple(model.idempotent_members),
            )
            self._operations[name] = op
        return op

    def _send(self, op: _Operation, body: bytes) -> Reply:
        headers = {"Content-Type": self._content_type, "X-Amz-Target": op.target}
        if self._query_compatible:
            headers["x-amzn-query-mode"] = "true"
        self._signer.sign(self._pool.host, headers, body)
        headers["Host"] = self._pool.host
        headers["User-Agent"] = USER_AGENT
        return self._pool.request(body, headers)

    def _parse(self, operation: str, reply: Reply) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "HTTPStatusCode": reply.status,
            "HTTPHeaders": dict(reply.headers),
        }
        request_id = reply.headers.get("x-amzn-requestid")
        if request_id:
            metadata["RequestId"] = request_id
        try:
            body = json.loads(reply.content) if reply.content else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):  # not JSON: a proxy's or load balancer's page
            if reply.status < 300:
                raise UnparsableAnswer(operation=operation, status=reply.status)
            body = {}
        if reply.status < 300:
            body["ResponseMetadata"] = metadata
            if operation == "ReceiveMessage":
                _decode_binary_attributes(body)
            return body
        return self._error(body, reply, metadata)

    def _error(
        self, body: dict[str, Any], reply: Reply, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        error: dict[str, Any] = {"Message": body.get("message", body.get("Message", ""))}
        code = str(body.get("__type") or reply.status)
        if ":" in code:
            code = code.split(":", 1)[0]
        if "#" in code:
            code = code.rsplit("#", 1)[1]
        query_error = reply.headers.get("x-amzn-query-error")
        if query_error:
            parts = query_error.split(";")
            if len(parts) == 2 and parts[0]:
                error["QueryErrorCode"] = code
                error["Type"] = parts[1]
                code = parts[0]
        error["Code"] = code
        parsed: dict[str, Any] = {
            k: v for k, v in body.items() if k not in ("__type", "message", "Message")
        }
        parsed["Error"] = error
        parsed["ResponseMetadata"] = metadata
        return parsed

    def _release_quota(self, request_context: dict[str, Any]) -> None:
        capacity = request_context.get("retry_quota_capacity")
        self._retry_quota.release(capacity if capacity else 1)  # as release_retry_quota

    def _observe(self, operation: str, code: str | None, retries: int) -> None:
        for observer in self._observers:
            observer(self.service, operation, code, retries)


class UnparsableAnswer(BotoCoreError):
    """A success status with a body that is not the protocol's JSON (a proxy's page)."""

    fmt = "{operation}: HTTP {status} with an answer that is not JSON"


def _blob(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode_binary_attributes(body: dict[str, Any]) -> None:
    """Binary message attributes as bytes, as botocore's parser gives blobs."""
    for message in body.get("Messages") or []:
        for attribute in (message.get("MessageAttributes") or {}).values():
            if "BinaryValue" in attribute:
                attribute["BinaryValue"] = base64.b64decode(attribute["BinaryValue"])
            if "BinaryListValues" in attribute:
                attribute["BinaryListValues"] = [
                    base64.b64decode(v) for v in attribute["BinaryListValues"]
                ]
