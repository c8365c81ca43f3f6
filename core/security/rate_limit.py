"""A token bucket: per provider in the workers (Twilio and SendGrid answer 429 past an
account's rate), per API key in the API (one client cannot starve the others)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token now or book the next one; returns how long to wait for it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_acquire(self) -> float:
        """Take a token if one is there: 0.0, else how long until one is (nothing taken)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def wait_time(self) -> float:
        """How long until a token is there (0.0: one is now), taking nothing."""
        with self._lock:
            now = self._clock()
            tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def acquire(self) -> float:
        """Block until a token is available; returns the time waited."""
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait
