"""DynamoDB's idempotency promise for TransactWriteItems, kept in front of moto.

botocore gives every TransactWriteItems a `ClientRequestToken` and keeps it across its
retries, and DynamoDB answers a repeat of an applied token with the original success for
ten minutes. moto ignores the token and applies the repeat again, so a transaction whose
answer the proxy replaced with a 500 or held past the client's timeout would, on botocore's
retry, fail its own conditions (`ConditionalCheckFailed`), which real AWS never says there.
The proxy therefore remembers every transaction the upstream applied and answers a repeat
itself; a repeat with other parameters gets `IdempotentParameterMismatchException`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from localstack.faults.wire import AwsCall, Reply, dynamodb_error

WINDOW_SECONDS = 600.0
MOST_TOKENS = 100_000


class TransactionTokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # token -> (expires at, digest of the request, the upstream's answer)
        self._seen: OrderedDict[str, tuple[float, bytes, Reply]] = OrderedDict()

    @staticmethod
    def _token(call: AwsCall) -> str | None:
        if call.service != "dynamodb" or call.operation != "TransactWriteItems":
            return None
        token = (call.json() or {}).get("ClientRequestToken")
        return token if isinstance(token, str) and token else None

    def answer(self, call: AwsCall) -> Reply | None:
        """The answer to a repeat of an applied transaction, or None to forward it."""
        token = self._token(call)
        if token is None:
            return None
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            seen = self._seen.get(token)
        if seen is None:
            return None
        _, digest, reply = seen
        if digest != hashlib.sha256(call.body).digest():
            return dynamodb_error(
                400,
                "IdempotentParameterMismatchException",
                "Request parameters do not match the parameters of the original request "
                "with the same client token.",
            )
        return Reply(reply.status, list(reply.headers), reply.body)

    def remember(self, call: AwsCall, reply: Reply) -> None:
        token = self._token(call)
        if token is None or reply.status != 200:
            return
        now = time.monotonic()
        with self._lock:
            self._seen[token] = (now + WINDOW_SECONDS, hashlib.sha256(call.body).digest(), reply)
            self._seen.move_to_end(token)
            while len(self._seen) > MOST_TOKENS:
                self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._seen:
            token, (expires, _, _) = next(iter(self._seen.items()))
            if expires > now:
                return
            del self._seen[token]
