"""Splitting a run of items into consecutive batches within a batch call's limits.

Every AWS batch call limits both its entries and their total size (SendMessageBatch: ten
entries and 256 KiB; TransactWriteItems: a hundred items and 4 MB); one chunker serves all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def sized_chunks(
    items: Sequence[T], size_of: Callable[[T], int], max_entries: int, max_bytes: int
) -> list[list[T]]:
    """Consecutive runs of items, each within `max_entries` and `max_bytes` (an item alone
    over `max_bytes` gets a call to itself, for the service to judge)."""
    out: list[list[T]] = []
    current: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if current and (len(current) == max_entries or total + size > max_bytes):
            out.append(current)
            current, total = [], 0
        current.append(item)
        total += size
    if current:
        out.append(current)
    return out
