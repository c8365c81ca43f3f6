"""One lean AWS call: encoded by the service's protocol codec, signed, sent, decoded, and
retried as botocore would.

Retries are botocore's standard mode, with botocore's own objects: the same retryable
conditions (throttling, transient codes and statuses, connection errors, a DynamoDB answer
whose CRC32 does not match its body), the same backoff and the same retry quota, over
`max_attempts` tries in all. An error is raised as botocore raises it: a `ClientError` of
the class the client's model names for its code, or botocore's own exception for a call
that got no answer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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


class Codec(Protocol):
    """A protocol's requests and answers: the headers and body of a call, and the answer as
    botocore's parsed dict (an error as `{"Error": {...}, ...}`)."""

    def encode(self, model: Any, params: dict[str, Any]) -> tuple[dict[str, str], bytes]: ...

    def decode(self, model: Any, reply: Reply) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Operation:
    model: Any  # botocore OperationModel
    idempotent: tuple[str, ...]


class _HttpResponse:
    """What botocore's retry conditions read of an answer."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, reply: Reply) -> None:
        self.status_code = reply.status
        self.headers = reply.headers
        self.content = reply.content


class WireClient:
    """Calls one service's operations; `client` is botocore's client of that service, whose
    model, exception classes and region the calls share, and `codec` speaks its protocol."""

    def __init__(
        self,
        client: Any,
        codec: Codec,
        pool: ConnectionPool,
        signer: SigV4Signer,
        *,
        max_attempts: int,
        observers: list[CallObserver] | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self._client = client
        self._codec = codec
        self._model = client.meta.service_model
        self.service = self._model.service_name
        self._pool = pool
        self._signer = signer
        self._observers = observers or []
        self.watchers: list[CallWatcher] = []
        self._sleep = sleep
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
        headers, body = self._codec.encode(op.model, params)
        attempt = 0
        request_context: dict[str, Any] = {}
        while True:
            attempt += 1
            reply: Reply | None = None
            parsed: dict[str, Any] | None = None
            caught: Exception | None = None
            try:
                reply = self._send(headers, body)
                parsed = self._codec.decode(op.model, reply)
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
            op = _Operation(model, tuple(model.idempotent_members))
            self._operations[name] = op
        return op

    def _send(self, encoded: dict[str, str], body: bytes) -> Reply:
        headers = dict(encoded)
        self._signer.sign(self._pool.host, headers, body)
        headers["Host"] = self._pool.host
        headers["User-Agent"] = USER_AGENT
        return self._pool.request(body, headers)

    def _release_quota(self, request_context: dict[str, Any]) -> None:
        capacity = request_context.get("retry_quota_capacity")
        self._retry_quota.release(capacity if capacity else 1)  # as release_retry_quota

    def _observe(self, operation: str, code: str | None, retries: int) -> None:
        for observer in self._observers:
            observer(self.service, operation, code, retries)
