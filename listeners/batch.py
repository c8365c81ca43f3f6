"""The batch core every queue shares: run a handler over a batch, then settle the results.

    receive (up to 10) → handler(messages) → one result each
      Ack        → DeleteMessageBatch
      Retry      → ChangeMessageVisibilityBatch (the backoff)
      DeadLetter → SendMessageBatch to <queue>-dlq with the reason, then delete

A handler that raises does not take the process down: every message of the batch is retried
with a backoff derived from its receive count, and the RedrivePolicy catches a message that
keeps failing that way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from core.aws import chunking
from core.platform import metrics
from core.platform.masking import mask_text
from listeners.backoff import backoff_seconds
from listeners.messages import Ack, DeadLetter, QueueMessage, Result, Retry

log = logging.getLogger("herald.batch")

SQS_BATCH_MAX = 10  # the most entries any SQS batch call takes
SQS_BATCH_MAX_BYTES = 256 * 1024  # all entries of one SendMessageBatch together
ERROR_ATTRIBUTE_MAX = 1024  # keep DLQ reasons short: attributes count toward 256 KiB

Handler = Callable[[Sequence[QueueMessage]], Sequence[Result]]
T = TypeVar("T")


def run_handler(
    handler: Handler, messages: Sequence[QueueMessage], base: float, cap: float
) -> list[Result]:
    """The handler's results, or a backoff for each message if it raised or miscounted."""
    try:
        results = list(handler(messages))
    except Exception:
        log.exception("handler failed on a batch of %d; retrying it", len(messages))
        results = []
    if len(results) != len(messages):
        return [
            Retry(backoff_seconds(m.receive_count, base, cap), "handler failed") for m in messages
        ]
    return results


class BatchSettler:
    """Applies a batch's results to SQS in as few calls as SQS allows."""

    def __init__(self, sqs: Any, queue_url: Callable[[str], str]) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def settle(self, messages: Sequence[QueueMessage], results: Sequence[Result]) -> None:
        by_queue: dict[str, list[tuple[QueueMessage, Result]]] = {}
        for message, result in zip(messages, results, strict=True):
            by_queue.setdefault(message.queue, []).append((message, result))
        for queue, pairs in by_queue.items():
            self._settle_queue(queue, pairs)

    def _settle_queue(self, queue: str, pairs: list[tuple[QueueMessage, Result]]) -> None:
        url = self._queue_url(queue)
        dead = [(m, r) for m, r in pairs if isinstance(r, DeadLetter)]
        moved = self.dead_letter(queue, dead) if dead else set()
        to_delete = [m for m, r in pairs if isinstance(r, Ack) or m.message_id in moved]
        retries = [(m, r) for m, r in pairs if isinstance(r, Retry)]
        for chunk in _chunks(to_delete):
            self._call(
                "delete",
                self._sqs.delete_message_batch,
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)
                ],
            )
        for chunk in _chunks(retries):
            self._call(
                "change visibility",
                self._sqs.change_message_visibility_batch,
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": r.delay}
                    for i, (m, r) in enumerate(chunk)
                ],
            )

    def dead_letter(self, queue: str, pairs: Sequence[tuple[QueueMessage, Result]]) -> set[str]:
        """Copy messages to the queue's DLQ; returns the ids that were copied.

        Calls are cut by size as well as by count: ten messages near the size limit do not
        fit one SendMessageBatch, and a refused copy would leave the message undeleted."""
        dlq_url = self._queue_url(f"{queue}-dlq")
        moved: set[str] = set()
        copies = [
            (message, _dead_letter_entry(queue, message, result)) for message, result in pairs
        ]
        for chunk in sized_chunks(copies, lambda copy: entry_bytes(copy[1])):
            entries = [{"Id": str(i), **entry} for i, (_, entry) in enumerate(chunk)]
            resp = self._call(
                "dead-letter", self._sqs.send_message_batch, QueueUrl=dlq_url, Entries=entries
            )
            if resp is None:
                continue
            for ok in resp.get("Successful", []):
                moved.add(chunk[int(ok["Id"])][0].message_id)
            metrics.DLQ_MOVES.labels(queue).inc(len(resp.get("Successful", [])))
        return moved

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """Settling is best effort: a failed delete means a redelivery, which every handler
        tolerates; it must not crash the consumer."""
        try:
            resp = fn(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            log.warning("%s failed: %s", what, exc)
            return None
        for failed in resp.get("Failed", []):
            log.warning("%s failed for an entry: %s", what, failed.get("Message"))
        return resp


def _chunks(items: Sequence[Any], size: int = SQS_BATCH_MAX) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _dead_letter_entry(queue: str, message: QueueMessage, result: Result) -> dict[str, Any]:
    """The DLQ copy of a message (without its batch Id): the body, the message's own
    attributes, and why, from where and after how many receives it was given up."""
    reason = getattr(result, "reason", "") or "dead-lettered"
    attributes = {
        k: {"DataType": "String", "StringValue": v}
        for k, v in message.attributes.items()
        if k not in ("error", "source_queue", "receive_count")
    }
    error = mask_text(reason)[:ERROR_ATTRIBUTE_MAX]  # stored: no addresses or numbers
    attributes["error"] = {"DataType": "String", "StringValue": error}
    attributes["source_queue"] = {"DataType": "String", "StringValue": queue}
    attributes["receive_count"] = {"DataType": "Number", "StringValue": str(message.receive_count)}
    return {"MessageBody": message.body or " ", "MessageAttributes": attributes}


def entry_bytes(entry: dict[str, Any]) -> int:
    """What SQS counts of one entry: the body, and each attribute's name, type and value."""
    size = len(entry["MessageBody"].encode())
    for name, value in entry.get("MessageAttributes", {}).items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(value.get("StringValue", "").encode())
    return size


def sized_chunks(
    items: Sequence[T],
    size_of: Callable[[T], int],
    max_entries: int = SQS_BATCH_MAX,
    max_bytes: int = SQS_BATCH_MAX_BYTES,
) -> list[list[T]]:
    """Runs of items within one SQS batch call's entry and size limits."""
    return chunking.sized_chunks(items, size_of, max_entries, max_bytes)
