"""Exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the exponential ceiling) spreads retries of
many messages that failed together, so a provider that recovers is not hit by a wave.
"""

from __future__ import annotations

import random

MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS's ceiling for a message's visibility timeout


def backoff_seconds(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> int:
    """Delay before attempt `attempt + 1`, never below the provider's Retry-After hint."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return int(min(max(delay, 0.0), MAX_VISIBILITY_SECONDS) + 0.999)
