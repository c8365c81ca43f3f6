"""Shared helpers of the notifiers: Retry-After parsing and the default status meaning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from core.platform.errors import PermanentError, RetryableError
from notifiers.base import retry_after_seconds, status_error


def test_retry_after_in_seconds() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(" 1.5 ") == 1.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    seconds = retry_after_seconds(later)
    assert seconds is not None and 3000 < seconds <= 3600
    earlier = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(earlier) == 0


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(status: int) -> None:
    error = status_error(status, "x", code="p", retry_after=2)
    assert isinstance(error, RetryableError)
    assert error.retry_after == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_client_errors_are_permanent(status: int) -> None:
    assert isinstance(status_error(status, "x", code="p"), PermanentError)
