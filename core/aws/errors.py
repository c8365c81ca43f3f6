"""What an AWS error means for the caller: refused, worth retrying, or possibly applied.

DynamoDB refuses a write for one reason only: its condition did not hold
(`ConditionalCheckFailed`). Everything else AWS answers under load — throttling, a
transaction conflict, a 500, a timeout — says nothing about the condition: the write may go
through if tried again, and for a 500 or a lost answer it may already have gone through.
Code that treats those as refusals loses writes; code that retries them blindly applies
non-idempotent ones twice. Callers therefore make every retried write conditional (so a
repeat is refused) and, after an ambiguous error, read back what is stored.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
)

T = TypeVar("T")

REFUSED = "ConditionalCheckFailedException"
REFUSED_REASON = "ConditionalCheckFailed"  # the same, as a transaction cancellation reason
CANCELLED = "TransactionCanceledException"

# Codes that say "not applied, try again": throttling and conflicts with other writers.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ThrottlingError",
    }
)
CONFLICT_CODES = frozenset(
    {"TransactionConflictException", "TransactionConflict", "TransactionInProgressException"}
)
# Codes after which the write may or may not have been applied.
SERVER_ERROR_CODES = frozenset(
    {
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMS.InternalException",
    }
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__


def is_refusal(exc: BaseException) -> bool:
    """The write's condition did not hold: retrying cannot change that."""
    return isinstance(exc, ClientError) and error_code(exc) == REFUSED


def cancellation_reasons(exc: BaseException) -> list[str]:
    """The per-item codes of a cancelled transaction ("None" for items that were fine)."""
    if not isinstance(exc, ClientError) or error_code(exc) != CANCELLED:
        return []
    return [str(r.get("Code") or "None") for r in exc.response.get("CancellationReasons") or []]


def refused_items(exc: BaseException) -> dict[int, dict[str, Any]]:
    """The items of a write whose condition did not hold, by position, each with the stored
    item DynamoDB sent back (`ReturnValuesOnConditionCheckFailure="ALL_OLD"`; empty when it
    sent none). A transaction names them in its cancellation reasons; a refused single write
    is item 0. Empty for anything else — a transaction cancelled only by throttling or a
    conflict refused nothing, and a caller that reads it as a refusal loses the write."""
    if not isinstance(exc, ClientError):
        return {}
    if error_code(exc) == REFUSED:
        return {0: dict(exc.response.get("Item") or {})}
    if error_code(exc) != CANCELLED:
        return {}
    reasons = exc.response.get("CancellationReasons") or []
    return {
        index: dict(reason.get("Item") or {})
        for index, reason in enumerate(reasons)
        if reason.get("Code") == REFUSED_REASON
    }


def may_have_applied(exc: BaseException) -> bool:
    """The call's answer was lost or was a server error: the write may be in the table."""
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError):
        return True
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return error_code(exc) in SERVER_ERROR_CODES or status >= 500
    return isinstance(exc, BotoCoreError) and "timeout" in type(exc).__name__.lower()


def is_retryable(exc: BaseException) -> bool:
    """Anything AWS says that is not a refusal or a malformed request is worth another try."""
    if isinstance(exc, BotoCoreError):
        return True
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    if code == CANCELLED:
        reasons = cancellation_reasons(exc)
        return bool(reasons) and REFUSED_REASON not in reasons
    return code in THROTTLING_CODES or code in CONFLICT_CODES or may_have_applied(exc)


def jittered(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform between zero and the exponential ceiling of this attempt."""
    return (rng or random).uniform(0, min(cap, base * 2 ** max(attempt, 0)))


def back_off_or_raise(exc: BaseException, rounds: int, limit: int, cap: float = 2.0) -> None:
    """After failed round `rounds` (from 1) of a write whose refused items were already
    taken out: raise `exc` unless it is worth another try and rounds are left, else wait a
    full-jitter backoff before the next one."""
    if not is_retryable(exc) or rounds >= limit:
        raise exc
    time.sleep(jittered(rounds - 1, 0.05, cap))


def retry(
    call: Callable[[], T],
    *,
    attempts: int = 6,
    base: float = 0.05,
    cap: float = 2.0,
    deadline: float | None = None,
    retryable: Callable[[BaseException], bool] = is_retryable,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """`call()` again after retryable errors, with full-jitter backoff, until it succeeds,
    `attempts` are spent, or `deadline` (a `time.monotonic()` value) passes; the last error
    is raised. Only for calls that are safe to repeat (conditional writes, reads)."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            attempt += 1
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if not retryable(exc) or attempt >= attempts or out_of_time:
                raise
            pause = jittered(attempt - 1, base, cap)
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            sleep(pause)
