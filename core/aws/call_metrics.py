"""botocore's call hooks that count every AWS call into the platform's metrics.

They live beside the clients because they read AWS's error codes (`core.aws.errors`);
the metric objects themselves stay with the other metrics in `core.platform.metrics`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from core.aws import errors as aws_errors
from core.platform.metrics import AWS_REQUESTS, AWS_RETRIES

CONFLICT_CODES = aws_errors.CONFLICT_CODES | {aws_errors.REFUSED, aws_errors.CANCELLED}


def aws_outcome(code: str | None) -> str:
    if not code:
        return "ok"
    if code in aws_errors.THROTTLING_CODES:
        return "throttled"
    if code in CONFLICT_CODES:
        return "conflict"
    return "error"


def after_aws_call(model: Any, parsed: Any = None, **_: Any) -> None:
    """botocore's `after-call` hook: one count per API call (after botocore's retries)."""
    code = None
    if isinstance(parsed, dict):
        code = (parsed.get("Error") or {}).get("Code")
        retried = (parsed.get("ResponseMetadata") or {}).get("RetryAttempts")
        if retried:
            AWS_RETRIES.labels(model.service_model.service_name, model.name).inc(retried)
    _count_aws(model, aws_outcome(code))


def count_call(service: str, operation: str, code: str | None, retries: int) -> None:
    """The lean path's calls (`core.aws.wire`), counted as the hooks count botocore's."""
    if retries:
        AWS_RETRIES.labels(service, operation).inc(retries)
    _requests(service, operation, aws_outcome(code)).inc()


def after_aws_call_error(event_name: str = "", **_: Any) -> None:
    """botocore's `after-call-error` hook: the call raised before any answer (network).
    This event carries no operation model: the names come from the event's own name,
    `after-call-error.<service id>.<operation>`."""
    parts = event_name.split(".")
    service, operation = (parts[1], parts[2]) if len(parts) == 3 else ("unknown", "unknown")
    _requests(service, operation, "error").inc()


@cache
def _requests(service: str, operation: str, outcome: str) -> Any:
    """The counter's child for these labels, looked up once: `labels()` validates and
    locks on every call, and every AWS call of every process lands here."""
    return AWS_REQUESTS.labels(service, operation, outcome)


def _count_aws(model: Any, outcome: str) -> None:
    _requests(model.service_model.service_name, model.name, outcome).inc()
